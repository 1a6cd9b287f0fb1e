# Thin rules: everything comes from sempos.pipeline.STAGES (embed, knn, linear, transfer).

rule embed:
    input:
        SMK.input("embed"),
    output:
        SMK.output("embed"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("embed"),
    threads: SMK.threads("embed")
    resources:
        gpu=SMK.gpus("embed"),
    shell:
        SMK.shell("embed")


rule knn:
    input:
        SMK.input("knn"),
    output:
        SMK.output("knn"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("knn"),
    threads: SMK.threads("knn")
    resources:
        gpu=SMK.gpus("knn"),
    shell:
        SMK.shell("knn")


rule linear:
    input:
        SMK.input("linear"),
    output:
        SMK.output("linear"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("linear"),
    threads: SMK.threads("linear")
    resources:
        gpu=SMK.gpus("linear"),
    shell:
        SMK.shell("linear")


rule transfer:
    input:
        SMK.input("transfer"),
    output:
        SMK.output("transfer"),
    params:
        file=SMK.params_file,
        sections=SMK.sections("transfer"),
    threads: SMK.threads("transfer")
    resources:
        gpu=SMK.gpus("transfer"),
    shell:
        SMK.shell("transfer")
