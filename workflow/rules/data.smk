# Thin rules: everything comes from sempos.pipeline.STAGES (download, prepare).

rule download:
    input:
        SMK.input("download"),
    output:
        SMK.output("download"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("download"),
    threads: SMK.threads("download")
    resources:
        gpu=SMK.gpus("download"),
    shell:
        SMK.shell("download")


rule prepare:
    input:
        SMK.input("prepare"),
    output:
        SMK.output("prepare"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("prepare"),
    threads: SMK.threads("prepare")
    resources:
        gpu=SMK.gpus("prepare"),
    shell:
        SMK.shell("prepare")
