"""Publishing an experiment's result: ``<out>/<name>.json`` + ``<out>/<name>.png``, markdown tables,
and its own marked block of ``docs/results.md``.

A block is everything between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``. Re-running
``memformer bench NAME --update-results`` replaces that block and nothing else, so each
experiment keeps its table current without touching the other sections (hand-written prose
belongs outside the markers, where it survives re-runs). A page without the block gets it
appended at its end.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .machine import load_average


def pyplot() -> Any:
    """``matplotlib.pyplot``, drawing off-screen (Agg): experiments run on machines without a
    display, in spawned processes and under pytest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(
    args: argparse.Namespace,
    *,
    name: str,
    title: str,
    environment: dict,
    data: dict,
    figure: Any,
    markdown: str,
) -> dict:
    """Write the result of experiment ``name`` and its plot into ``args.out``; return the result.

    Args:
        environment: ``machine.environment()`` taken when the experiment started.
        data: the experiment's own numbers (JSON-serialisable; tuples and paths are fine).
        figure: a matplotlib Figure, saved as ``<name>.png`` and closed.
        markdown: the tables and the comparison with the paper (goes into docs/results.md).

    The result holds ``name``, ``title``, ``quick``, ``environment``, ``load_average_end``,
    ``arguments``, the experiment's ``data`` keys, ``markdown`` and ``files`` (json, png paths).
    """
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / f"{name}.json", out / f"{name}.png"
    figure.savefig(png_path, dpi=120)
    plt.close(figure)
    arguments = {key: value for key, value in vars(args).items() if key not in ("command", "_run")}
    result = {
        "name": name,
        "title": title,
        "quick": bool(args.quick),
        "environment": environment,
        "load_average_end": load_average(),
        "arguments": arguments,
        **data,
        "markdown": markdown,
        "files": {"json": str(json_path), "png": str(png_path)},
    }
    _atomic_write(json_path, json.dumps(result, indent=2, default=_jsonable) + "\n")
    return json.loads(json.dumps(result, default=_jsonable))


def results_block(result: dict, *, doc_path: Path) -> str:
    """The markdown of a result's block in ``doc_path``: title, command, machine, plot, tables."""
    env = result["environment"]
    doc_dir = Path(doc_path).resolve().parent
    json_link = _relative(result["files"]["json"], doc_dir)
    png_link = _relative(result["files"]["png"], doc_dir)
    threads = result["arguments"].get("threads") or env.get("torch_threads")
    memory = env.get("memory_total_bytes")
    machine = f"{env['cpu']}, {env['cpu_count']} cores" + (f", {memory / 2**30:.0f} GiB RAM" if memory else "")
    load = _load_text(env.get("load_average"), result.get("load_average_end"))
    quick = ("\n\n**Quick run (`--quick`): smoke-test sizes, the numbers mean nothing.**" if result["quick"] else "")
    return (
        f"## {result['title']}\n\n"
        f"<!-- Written by `memformer bench {result['name']} --update-results`; re-running it replaces this block. -->\n\n"
        f"Command: `{env['command']}`. Ran {env['date']} on {machine}{load}; Python {env['python']}, "
        f"torch {env['torch']}, {threads} torch thread{'s' if threads != 1 else ''}. "
        f"Result: [`{Path(json_link).name}`]({json_link}), plot: [`{Path(png_link).name}`]({png_link}).{quick}\n\n"
        f"![{result['title']}]({png_link})\n\n"
        f"{result['markdown'].strip()}\n"
    )


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def update_results_doc(path: Path, name: str, block: str) -> None:
    """Replace experiment ``name``'s marked block in ``path`` (append it if there is none).

    Raises ValueError when the page holds a broken pair of markers, rather than guessing.
    """
    path = Path(path)
    text = path.read_text()
    begin, end = markers(name)
    body = block.strip("\n")
    begins, ends = text.count(begin), text.count(end)
    if begins == ends == 0:
        new_text = f"{text.rstrip()}\n\n{begin}\n{body}\n{end}\n"
    elif begins == ends == 1 and text.index(begin) < text.index(end):
        start, stop = text.index(begin) + len(begin), text.index(end)
        new_text = f"{text[:start]}\n{body}\n{text[stop:]}"
    else:
        raise ValueError(
            f"{path} holds {begins} '{begin}' and {ends} '{end}' marker(s); expected one of each, in that "
            "order, or none: fix the page by hand"
        )
    _atomic_write(path, new_text)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are written with ``str``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_bytes(count: float | None) -> str:
    """1536 -> '1.5 KiB' (binary units, three significant digits)."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_ratio(value: float | None) -> str:
    """2.345 -> '2.35x', 1234.5 -> '1,234x'."""
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 1000 else f"{value:.3g}x"


def log2_axis(ax, values: Sequence[int]) -> None:
    """A log2 x axis ticked at exactly ``values`` (sequence lengths, memory sizes, positions)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(values), [f"{v // 1024}k" if v >= 1024 and v % 1024 == 0 else str(v) for v in values])
    ax.minorticks_off()


def _load_text(start: list[float] | None, end: list[float] | None) -> str:
    if not start:
        return ""
    text = f" (load average {'/'.join(f'{x:.1f}' for x in start)} at the start"
    if end:
        text += f", {'/'.join(f'{x:.1f}' for x in end)} at the end"
    return text + ")"


def _relative(path: str, directory: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), directory)).as_posix()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} to a result JSON")


def _atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file and rename it: a crash never leaves half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        # mkstemp makes the file private (0600); keep the page's own mode instead.
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
