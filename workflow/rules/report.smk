# Thin rules: everything comes from sempos.pipeline.STAGES (report).

rule report:
    input:
        SMK.input("report"),
    output:
        SMK.output("report"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("report"),
    threads: SMK.threads("report")
    resources:
        gpu=SMK.gpus("report"),
    shell:
        SMK.shell("report")
