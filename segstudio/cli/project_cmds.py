"""`segstudio new | info | import | export`: create, inspect, fill and export projects."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from segstudio.core.classes import ClassTable, load_class_file, parse_labels
from segstudio.core.errors import SegstudioError

DEFAULT_EXPORT_STATUS = "labeled,reviewed"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from segstudio.core.exporters import FORMATS as EXPORT_FORMATS
    from segstudio.core.importers import FORMATS as IMPORT_FORMATS

    new = subparsers.add_parser("new", help="create an empty project")
    new.add_argument("project", type=Path, help="project folder to create")
    new.add_argument("--classes", help='class file (classes.json, labels.txt) or names "a,b,c"')
    new.add_argument("--name", help="display name (default: the folder name)")
    new.set_defaults(func=cmd_new)

    info = subparsers.add_parser("info", help="show a project's images, splits, classes and pixel shares")
    info.add_argument("project", type=Path)
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.add_argument("--split", help="only this split (train, val, test, unassigned)")
    info.set_defaults(func=cmd_info)

    imp = subparsers.add_parser(
        "import", help="import a dataset (creates the project if needed)",
        description="Import images and masks. Reports every skipped file with its reason; "
        "exits non-zero only when nothing could be imported, or on any skip with --strict.",
    )
    imp.add_argument("project", type=Path)
    imp.add_argument("sources", nargs="*", type=Path, metavar="SRC",
                     help="dataset folder(s) or file(s), depending on the format")
    imp.add_argument("--format", "-f", required=True, choices=IMPORT_FORMATS)
    imp.add_argument("--images", action="append", type=Path, default=[],
                     help="image folder (folders: repeatable, paired with --masks and --split; coco: image root)")
    imp.add_argument("--masks", action="append", type=Path, default=[], help="mask folder (folders)")
    imp.add_argument("--split", action="append", default=[],
                     help="split for the images (repeatable for folders: one per --images)")
    imp.add_argument("--classes", type=Path, help="class file: classes.json or labels.txt")
    imp.add_argument("--copy", action="store_true", help="copy images into PROJECT/images")
    imp.add_argument("--strict", action="store_true", help="fail (and change nothing) if any file is skipped")
    imp.set_defaults(func=cmd_import)
    _allow_sources_after_options(imp)

    exp = subparsers.add_parser(
        "export", help="export masks in a dataset format",
        description="Export masks in a dataset format. geotiff: single-band class-id GeoTIFFs with the "
        "source's CRS and transform and the class colours. Masks of gigapixel images (tiled, "
        "masks/<id>.zarr) are written tile by tile, never whole: geotiff writes a tiled GeoTIFF with "
        "overviews, masks a tiled TIFF (masks/<id>.tif); color, overlay, voc, cityscapes and coco "
        "leave them out, each named in the report with the reason.",
    )
    exp.add_argument("project", type=Path)
    exp.add_argument("--format", "-f", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("--out", required=True, type=Path, help="output folder")
    exp.add_argument("--split", help="only this split")
    exp.add_argument("--status", default=DEFAULT_EXPORT_STATUS,
                     help=f"image statuses to export, comma separated (default {DEFAULT_EXPORT_STATUS}; "
                     "add 'predicted' to include unreviewed predictions)")
    exp.set_defaults(func=cmd_export)


def emit(text: str) -> None:
    """Print to stdout; a closed pipe (`segstudio info P | head`) ends quietly."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at devnull so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _allow_sources_after_options(parser: argparse.ArgumentParser) -> None:
    """`import PROJECT --format F SRC...`: argparse fills a '*' positional from the first run
    of positionals only, so SRC after the options would be 'unrecognized'; collect them."""
    parse_known = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = parse_known(args, namespace)
        rest = [a for a in extras if a.startswith("-") and a != "-"]
        parsed.sources = [*parsed.sources, *(Path(a) for a in extras if a not in rest)]
        return parsed, rest

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def parse_classes_arg(value: str) -> ClassTable:
    """A class file path, or class names separated by commas."""
    path = Path(value)
    if path.is_file():
        return load_class_file(path)
    if path.suffix.lower() in (".json", ".txt") and "," not in value:
        raise SegstudioError(f"class file {path} not found; give a file path or names like \"a,b,c\"")
    return parse_labels(value.split(","), source="--classes")


def cmd_new(args: argparse.Namespace) -> int:
    from segstudio.core.project import Project

    classes = parse_classes_arg(args.classes) if args.classes else ClassTable(())
    project = Project.create(args.project, classes, name=args.name)
    emit(f"created project {project.name} at {project.root} with {len(project.classes)} classes")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from segstudio.core.project import Project, check_split

    project = Project.open(args.project)
    if args.split:
        check_split(args.split)
    summary = project.summary(args.split)
    if args.json:
        emit(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    emit("\n".join(format_summary(summary, args.split)))
    return 0


def format_summary(summary: dict[str, Any], split: str | None = None) -> list[str]:
    """The info summary as a readable table."""
    scope = f" (split {split})" if split else ""
    lines = [
        f"project  {summary['name']}  ({summary['path']})",
        f"images   {summary['images']}{scope}, {summary['masks']} with masks",
        "splits   " + (", ".join(f"{k} {v}" for k, v in summary["splits"].items() if v) or "-"),
        "status   " + (", ".join(f"{k} {v}" for k, v in summary["status"].items() if v) or "-"),
        "",
        f"{'id':>3}  {'class':<24} {'colour':<15} {'pixels':>8}  ignore",
    ]
    shares = summary.get("pixel_share", {})
    for cls in summary["classes"]:
        color = "#{:02x}{:02x}{:02x}".format(*cls["color"])
        share = shares.get(cls["name"], 0.0) * 100
        lines.append(
            f"{cls['id']:>3}  {cls['name']:<24} {color:<15} {share:>7.2f}%  {'yes' if cls['ignore'] else ''}"
        )
    return lines + format_rasters(summary)


def format_rasters(summary: dict[str, Any]) -> list[str]:
    """Bands, dtype and georeferencing per image (only for non-photo projects)."""
    if "rasters" not in summary:
        return []
    lines = [""]
    table = summary.get("channels") or {}
    if table:
        bands = ", ".join(b["name"] + ("" if b.get("model", True) else " (not to model)") for b in table["bands"])
        lines.append(f"channels {bands} ({table.get('dtype', '?')})")
    lines.append(f"{'image':<24} {'bands':>5} {'dtype':<8} crs / geotransform")
    for image_id, r in summary["rasters"].items():
        geo = r["crs"] or ("no CRS" if r["geotransform"] else "-")
        if r["geotransform"]:
            geo += "  [" + ", ".join(f"{v:g}" for v in r["geotransform"]) + "]"
        lines.append(f"{image_id:<24} {r['channels'] or '?':>5} {r['dtype'] or '?':<8} {geo}")
    return lines


def cmd_import(args: argparse.Namespace) -> int:
    from segstudio.core.importers import ImportOptions, import_dataset

    splits = tuple(args.split)
    options = ImportOptions(
        sources=tuple(args.sources),
        images=tuple(args.images),
        masks=tuple(args.masks),
        splits=splits if args.format == "folders" else (),
        split=splits[0] if splits else None,
        classes_file=args.classes,
        copy=args.copy,
        strict=args.strict,
    )
    if args.format != "folders" and len(splits) > 1:
        raise SegstudioError(f"--split can be given once for the {args.format} format")
    report = import_dataset(args.project, args.format, options)
    emit("\n".join(report.lines()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from segstudio.core.exporters import export_project
    from segstudio.core.project import Project

    project = Project.open(args.project)
    statuses = tuple(s.strip() for s in args.status.split(",") if s.strip())
    report = export_project(project, args.format, args.out, split=args.split, statuses=statuses)
    emit("\n".join(report.lines()))
    return 0
