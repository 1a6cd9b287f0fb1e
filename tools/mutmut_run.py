"""`mutmut run` that skips the equivalent mutants listed in tools/mutation_equivalents.yaml.

mutmut (3.8, pinned) has no list of known mutants to leave out, only `# pragma: no mutate`, which silences a
whole line (and every killable mutant on it). So this runs mutmut's own command with one step added: right after
mutmut writes the mutants, the listed ones get mutmut's "skipped" status, which its loop leaves alone and its
counts show apart (🔇). A survivor costs every test that reaches its function, so the equivalent ones were half
of a campaign's time. `--run-equivalents` (make mutation EQUIVALENTS=run) skips nothing. `--only-equivalents`
(EQUIVALENTS=check) turns the list around and runs only the listed ones, to check that each still survives: a
killed one is not equivalent (tools/mutation_summary.py --check-equivalents says which).

    python tools/mutmut_run.py [--run-equivalents | --only-equivalents] [mutmut run arguments...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutation_equivalents as equivalents  # noqa: E402

LISTED_FILE = Path("mutants/equivalents.txt")  # listed mutant <TAB> reason, for the summary
_report: list[str] = []  # mutmut captures the output of mutant generation: said once it is done


def _skip_listed(create_mutants, *, only_listed: bool = False):
    """Skip the listed mutants, or (only_listed) every mutant but the listed ones."""
    def wrapped(*args, **kwargs):
        stats = create_mutants(*args, **kwargs)
        _, entries = equivalents.load()
        changes = equivalents.mutant_changes(Path("mutants/src"))
        names = equivalents.listed(changes, entries)
        LISTED_FILE.write_text("".join(f"{n}\t{r}\n" for n, r in sorted(names.items())))
        marked = equivalents.mark_skipped(Path("mutants"), set(names), all_but=only_listed)
        done = (f"{len(names)} listed equivalent mutants to run, {marked} others skipped" if only_listed
                else f"{marked} listed equivalent mutants skipped")
        _report.append(f"    {done} ({LISTED_FILE}; {len(entries)} entries)")
        _report.extend(f"    listed but not generated (edited since?): {e['function']}: {e['added']}"
                       for e in equivalents.unmatched(changes, entries))
        return stats
    return wrapped


def _leave_skipped_out(collect):
    """Named mutants (`mutmut run NAME*`) are re-run whatever their status: keep the skipped ones out."""
    def wrapped(*, mutant_names):
        print("\n".join(_report))
        _report.clear()
        mutants, by_path = collect(mutant_names=mutant_names)
        kept = [m for m in mutants if m[2] != equivalents.SKIPPED]
        if mutant_names and not kept:
            sys.exit(f"every mutant matching {list(mutant_names)} is a listed equivalent")
        return kept, by_path
    return wrapped


def main(argv: list[str]) -> None:
    modes = {"--run-equivalents", "--only-equivalents"} & set(argv)
    if len(modes) > 1:
        sys.exit("--run-equivalents runs every mutant, --only-equivalents only the listed ones: give one")
    argv = [a for a in argv if a not in modes]
    import mutmut.__main__ as mutmut_main  # the `mutation` extra: not needed to test the steps above

    if "--run-equivalents" not in modes:
        mutmut_main.create_mutants = _skip_listed(mutmut_main.create_mutants,
                                                  only_listed="--only-equivalents" in modes)
        mutmut_main.collect_source_file_mutation_data = _leave_skipped_out(
            mutmut_main.collect_source_file_mutation_data)
    mutmut_main.cli(["run", *argv], prog_name="mutmut")


if __name__ == "__main__":
    main(sys.argv[1:])
