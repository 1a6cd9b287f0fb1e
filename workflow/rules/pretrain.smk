# Thin rules: everything comes from sempos.pipeline.STAGES (pretrain, mine).

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


rule mine:
    input:
        SMK.input("mine"),
    output:
        SMK.output("mine"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("mine"),
    threads: SMK.threads("mine")
    resources:
        gpu=SMK.gpus("mine"),
    shell:
        SMK.shell("mine")
