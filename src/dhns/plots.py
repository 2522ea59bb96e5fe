"""Render the plots dvc.yaml declares to SVG, PNG and one offline HTML page: `python -m dhns.plots`.

`dvc plots show` writes an HTML page that loads Vega from a CDN (blank offline) and declares no charset
(d3's minus sign then shows as mojibake). Here DVC still fills its templates (`dvc plots show --json`,
so custom templates such as .dvc/plots/hardness.json apply), and vl-convert, which carries Vega and
Vega-Lite inside, draws them: `<name>.svg` and `<name>.png` per plot, and `index.html` with every plot and
the JavaScript inlined. `--figure` also stitches the PNGs into one picture (docs/images/training_curves.png).

Usage: `python -m dhns.plots [--out plots/rendered] [--from-json shown.json] [--figure a.png] [targets]`;
targets are plot files or folders (default: all, in dvc.yaml's order), `--from-json` a saved `--json`
output.
"""

from __future__ import annotations

import argparse
import html
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import vl_convert

# DVC's templates declare Vega-Lite v5; the newest v5 that vl-convert carries renders them as DVC does
VEGA_LITE_VERSION = "5.21"
DEFAULT_OUT = Path("plots/rendered")


@dataclass(frozen=True)
class Plot:
    """One filled Vega-Lite spec, named after the file it plots (`plots/train/metrics/loss.tsv`)."""

    source: str
    spec: dict
    number: int = 0  # 1, 2, ... where one file gives several specs (one per y field)

    @property
    def name(self) -> str:
        """A flat file name: `train-metrics-loss`; the leading `plots/` and the suffix dropped."""
        parts = Path(self.source).with_suffix("").parts
        stem = "-".join(parts[1:] if parts[0] == "plots" and len(parts) > 1 else parts)
        return f"{stem}-{self.number}" if self.number else stem


def show_plots(cwd: Path | None = None) -> dict:
    """`dvc plots show --json` of this repository: DVC's filled specs, keyed by plot file.

    Always every plot: a file of a folder output named as a target loses the folder's properties
    (`x: step`, `x_label`) and is drawn against its row number, so targets are picked afterwards.
    """
    command = [sys.executable, "-m", "dvc", "plots", "show", "--json"]
    shown = subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    return json.loads(shown.stdout)


def vega_plots(shown: dict, targets: Sequence[str] = ()) -> tuple[list[Plot], list[str]]:
    """The Vega-Lite plots in a `dvc plots show --json` answer, and its errors.

    With `targets` (files or folders), only the plots under them, in the targets' order.
    """
    sources = list(shown.get("data", {}))
    if targets:
        sources = [source for target in targets for source in sources if _under(source, target)]
    plots = []
    for source in dict.fromkeys(sources):  # a file under two targets once
        specs = [entry["content"] for entry in shown["data"][source] if entry.get("type") == "vega"]
        plots.extend(Plot(source, spec, number if len(specs) > 1 else 0) for number, spec in enumerate(specs, 1))
    errors = [f"{error.get('name', '?')}: " + " ".join(str(error.get("msg") or error.get("type", "error")).split())
              for error in shown.get("errors", [])]
    return plots, errors


def _under(source: str, target: str) -> bool:
    target = target.rstrip("/")
    return source == target or source.startswith(target + "/")


def render(plots: Sequence[Plot], out: Path, scale: float = 2.0) -> list[Path]:
    """Write `<name>.svg` and `<name>.png` per plot and `index.html`; returns the PNGs in plot order."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = []
    for plot in plots:
        svg = vl_convert.vegalite_to_svg(plot.spec, vl_version=VEGA_LITE_VERSION)
        (out / f"{plot.name}.svg").write_text(svg, encoding="utf-8")
        png = out / f"{plot.name}.png"
        png.write_bytes(vl_convert.vegalite_to_png(plot.spec, vl_version=VEGA_LITE_VERSION, scale=scale))
        pngs.append(png)
    (out / "index.html").write_text(offline_page(plots), encoding="utf-8")
    return pngs


def offline_page(plots: Sequence[Plot], title: str = "DVC plots") -> str:
    """One HTML page holding every plot, with Vega, Vega-Lite and vega-embed inlined: it opens offline."""
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)
    sections = "\n".join(f'<section><h2>{html.escape(plot.source)}</h2><div id="plot-{index}"></div></section>'
                         for index, plot in enumerate(plots))
    specs = json.dumps([plot.spec for plot in plots]).replace("</", "<\\/")  # no `</script>` inside the data
    # actions: the editor link needs the network; exporting and the source view do not
    embed = ("const specs = " + specs + ";\n"
             "const options = {renderer: 'svg', actions: {export: true, source: true, compiled: false, editor: false}};\n"
             "specs.forEach((spec, index) => vegaEmbed('#plot-' + index, spec, options).catch(console.error));")
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        "<style>body {font-family: sans-serif; margin: 2em;} section {margin-bottom: 2em;}</style>\n"
        f"<script>{bundle}</script>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{sections}\n"
        f"<script>\n{embed}\n</script>\n</body>\n</html>\n"
    )


def stitch(pngs: Sequence[Path], target: Path, columns: int = 2) -> None:
    """The PNGs on a white grid, `columns` per row, each row as tall as its tallest image."""
    from PIL import Image

    images = [Image.open(path).convert("RGB") for path in pngs]
    rows = [images[start : start + columns] for start in range(0, len(images), columns)]
    width = max(sum(image.width for image in row) for row in rows)
    height = sum(max(image.height for image in row) for row in rows)
    canvas = Image.new("RGB", (width, height), "white")
    top = 0
    for row in rows:
        left = 0
        for image in row:
            canvas.paste(image, (left, top))
            left += image.width
        top += max(image.height for image in row)
    target.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(target, optimize=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dhns.plots", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="plot files or folders, as dvc.yaml names them (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="a saved `dvc plots show --json` output instead of running it")
    parser.add_argument("--figure", type=Path, default=None, help="also stitch the PNGs into this one picture")
    parser.add_argument("--columns", type=int, default=2, help="plots per row of --figure (default 2)")
    parser.add_argument("--scale", type=float, default=2.0, help="PNG pixels per Vega pixel (default 2)")
    args = parser.parse_args(argv)
    if args.columns < 1 or args.scale <= 0:
        parser.error("--columns must be >= 1 and --scale > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        shown = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        try:
            shown = show_plots()
        except subprocess.CalledProcessError as error:
            print(f"plots: `dvc plots show --json` failed:\n{error.stderr}", file=sys.stderr)
            return 1
    plots, errors = vega_plots(shown, args.targets)
    for error in errors:
        print(f"plots: skipped {error}", file=sys.stderr)
    if not plots:
        print("plots: no plot to render (run the pipeline first: `dvc repro`)", file=sys.stderr)
        return 1
    pngs = render(plots, args.out, args.scale)
    if args.figure is not None:
        stitch(pngs, args.figure, args.columns)
    print(f"plots: {len(plots)} plots in {args.out} (index.html, .svg, .png)"
          + (f"; figure {args.figure}" if args.figure is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
