"""`facelab faceset sort | dedupe | filter`: order a faceset, remove near-duplicates, keep one person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.options import choice_metavar
from facelab.cli.progress import console, progress_bar
from facelab.face.identity import SAME_PERSON_THRESHOLD
from facelab.faceset.sort.dedupe import DEFAULT_DEDUPE_THRESHOLD
from facelab.faceset.sort.jobs import JobReport, dedupe_faceset, filter_faceset, sort_faceset
from facelab.faceset.sort.methods import DEFAULT_BEST_TARGET, SORT_METHODS
from facelab.faceset.sort.rename import trash_dir

Folder = Annotated[Path, typer.Argument(metavar="DIR", help="Folder of aligned faces.", show_default=False)]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List what would happen; change nothing.")]
Workers = Annotated[int, typer.Option(min=1, max=64, help="Worker processes for reading faces and computing features.")]
_SHOWN = 10


def _names(paths: list[Path]) -> str:
    names = ", ".join(p.name for p in paths[:_SHOWN])
    return names + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def _score(report: JobReport, path: Path) -> str:
    value = report.scores.get(path, report.distances.get(path))
    return "" if value is None else f"  ({value:.4g})"


def _report(report: JobReport, what: str) -> None:
    plan, verb = report.plan, "would move" if report.dry_run else "moved"
    if report.recovered:
        console.print(f"finished an interrupted sort first ({report.recovered} files renamed)")
    if report.dry_run:
        for move in plan.renames:
            typer.echo(f"{move.source.name} -> {move.target.name}{_score(report, move.source)}")
        for move in plan.trash:
            where = f"{move.target.parent.name}/{move.target.name}"
            typer.echo(f"{move.source.name} -> {where}{_score(report, move.source)}")
    kept = report.faces - len(plan.trash)
    line = f"{what}: {report.faces} faces, {kept} kept"
    if plan.renames or plan.unchanged:
        line += f" ({len(plan.renames)} {'to rename' if report.dry_run else 'renamed'})"
    if plan.trash:
        line += f", {len(plan.trash)} {verb} to {trash_dir(report.directory)}"
    console.print(line + (" (dry run: nothing changed)" if report.dry_run else ""), markup=False, highlight=False)
    if report.foreign:
        console.print(f"skipped {len(report.foreign)} images without face metadata: {_names(report.foreign)}",
                      markup=False, highlight=False)
    for path, reason in report.invalid[:_SHOWN]:
        console.print(f"skipped {path.name}: {reason}", markup=False, highlight=False)
    if len(report.invalid) > _SHOWN:
        console.print(f"skipped {len(report.invalid) - _SHOWN} more unreadable face files")


def sort(
    directory: Folder,
    by: Annotated[str, typer.Option("--by", metavar=choice_metavar(SORT_METHODS.names()),
                                    help="Sort method (see README).", show_default=False)],
    target: Annotated[int, typer.Option(min=1, help="best/best-fast: how many faces to keep.")] = DEFAULT_BEST_TARGET,
    dry_run: DryRun = False,
    workers: Workers = 1,
) -> None:
    """Sort faces in place (renamed with an order prefix, NNNNN~name); rejected faces go to DIR_trash."""
    SORT_METHODS.get(by)  # an unknown method is a one-line error naming the choices, before any work
    with progress_bar(f"sort by {by}: features", transient=True) as bar:
        report = sort_faceset(directory, by, target=target, dry_run=dry_run, workers=workers,
                              progress=bar.advance, total=bar.set_total)
    _report(report, f"sorted by {by}")


def dedupe(
    directory: Folder,
    threshold: Annotated[float, typer.Option(min=0.0, help="Largest RMS thumbnail difference (0-255 levels) "
                                             "for two faces to count as the same.")] = DEFAULT_DEDUPE_THRESHOLD,
    dry_run: DryRun = False,
    workers: Workers = 1,
) -> None:
    """Move near-identical faces to DIR_trash, keeping the sharpest of each group."""
    with progress_bar("dedupe: features", transient=True) as bar:
        report = dedupe_faceset(directory, threshold=threshold, dry_run=dry_run, workers=workers,
                                progress=bar.advance, total=bar.set_total)
    _report(report, f"{len(report.groups)} groups of near-identical faces")


def filter_faces(
    directory: Folder,
    identity: Annotated[Path | None, typer.Option(
        "--identity", metavar="REF",
        help="The person to keep: a face image, an aligned face, or a folder of them. "
             "Default: the set's main identity.")] = None,
    threshold: Annotated[float, typer.Option(min=0.01, max=2.0, help="Largest identity distance to keep "
                                             "(dlib: same person below 0.6).")] = SAME_PERSON_THRESHOLD,
    dry_run: DryRun = False,
    workers: Workers = 1,
) -> None:
    """Move faces of other people to DIR_trash."""
    with progress_bar("filter: identities", transient=True) as bar:
        report = filter_faceset(directory, reference=identity, threshold=threshold, dry_run=dry_run,
                                workers=workers, progress=bar.advance, total=bar.set_total)
    _report(report, f"identity filter ({'reference ' + identity.name if identity else 'main identity'})")
