# sempos: the full DAG. `snakemake --cores 2` runs params.yaml; add `--configfile config/X.yaml` for an overlay.
# Rules are thin: inputs, outputs, params and commands come from the stage table in sempos.pipeline,
# which also generates dvc.yaml, so both tools run the same commands on the same files.
from snakemake.utils import validate

from sempos.config import drop_removed_methods, validate as sempos_validate
from sempos.pipeline import WILDCARD_PATTERNS, SnakemakeView, final_targets, snakemake_params_file

configfile: "params.yaml"
drop_removed_methods(config)  # an overlay's `method: null` removes that method
validate(config, "workflow/schemas/params.schema.yaml")
sempos_validate(config, "snakemake config")

SMK = SnakemakeView(config, snakemake_params_file(config))

wildcard_constraints:
    **WILDCARD_PATTERNS


rule all:
    input:
        final_targets(config),


include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/report.smk"
