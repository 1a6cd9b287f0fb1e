# Thin rules: everything comes from sempos.pipeline.STAGES (pretrain).

rule pretrain:
    input:
        SMK.input("pretrain"),
    output:
        SMK.output("pretrain"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("pretrain"),
    threads: SMK.threads("pretrain")
    resources:
        gpu=SMK.gpus("pretrain"),
    shell:
        SMK.shell("pretrain")
