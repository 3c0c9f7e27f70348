"""Automatic layout: nodes in columns by depth, left to right along the wires.

A pure function over ids, links and sizes, so it is easy to test and knows nothing of Qt.
"""
from __future__ import annotations

from typing import Iterable

Size = tuple[float, float]
COLUMN_GAP = 80.0
ROW_GAP = 40.0


def arrange(nodes: Iterable[str], links: Iterable[tuple[str, str]], sizes: dict[str, Size],
            origin: tuple[float, float] = (0.0, 0.0)) -> dict[str, tuple[float, float]]:
    """Positions for `nodes`; `links` are (source, consumer) pairs. Cycles are tolerated."""
    ids = list(nodes)
    parents: dict[str, list[str]] = {n: [] for n in ids}
    for src, dst in links:
        if src in parents and dst in parents and src != dst:
            parents[dst].append(src)
    depth: dict[str, int] = {}

    def depth_of(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n in depth:
            return depth[n]
        if n in seen:
            return 0
        d = max((depth_of(p, seen | {n}) + 1 for p in parents[n]), default=0)
        depth[n] = d
        return d

    for n in ids:
        depth_of(n)
    columns: dict[int, list[str]] = {}
    for n in ids:
        columns.setdefault(depth[n], []).append(n)
    positions: dict[str, tuple[float, float]] = {}
    row_of: dict[str, float] = {}
    x = origin[0]
    for col in sorted(columns):
        members = columns[col]
        # Order by where the parents sit (barycentre), so wires cross less.
        members.sort(key=lambda n: (sum(row_of.get(p, 0.0) for p in parents[n]) / len(parents[n])
                                    if parents[n] else -1.0, ids.index(n)))
        y = origin[1]
        for i, n in enumerate(members):
            positions[n] = (x, y)
            row_of[n] = y + sizes[n][1] / 2
            y += sizes[n][1] + ROW_GAP
        x += max(sizes[n][0] for n in members) + COLUMN_GAP
    return positions


def overlapping(rects: dict[str, tuple[float, float, float, float]], share: float = 0.25) -> bool:
    """Whether any two rectangles (x, y, w, h) overlap by more than `share` of the smaller one."""
    items = list(rects.values())
    for i, (x1, y1, w1, h1) in enumerate(items):
        for x2, y2, w2, h2 in items[i + 1:]:
            ix = min(x1 + w1, x2 + w2) - max(x1, x2)
            iy = min(y1 + h1, y2 + h2) - max(y1, y2)
            if ix > 0 and iy > 0 and ix * iy > share * min(w1 * h1, w2 * h2):
                return True
    return False


def spread(ui: dict, factor: float) -> dict:
    """A copy of a workflow's layout with every position (and group, reroute dot and note) scaled
    by `factor` from the top-left node: the same picture with more room, for files drawn by an
    editor whose nodes are smaller than ours."""
    positions = ui.get("positions") or {}
    points = [p for p in positions.values() if isinstance(p, (list, tuple)) and len(p) == 2]
    if not points:
        return dict(ui)
    ox, oy = min(p[0] for p in points), min(p[1] for p in points)

    def move(p: list) -> list:
        return [round(ox + (p[0] - ox) * factor, 1), round(oy + (p[1] - oy) * factor, 1)]

    out = dict(ui)
    out["positions"] = {k: move(p) if p in points else p for k, p in positions.items()}
    if isinstance(ui.get("groups"), list):
        out["groups"] = [dict(g, bounding=move(g["bounding"][:2]) + [g["bounding"][2] * factor, g["bounding"][3] * factor])
                         if isinstance(g, dict) and isinstance(g.get("bounding"), list) and len(g["bounding"]) == 4
                         else g for g in ui["groups"]]
    if isinstance(ui.get("reroutes"), dict):
        out["reroutes"] = {k: dict(r, pos=move(r["pos"])) if isinstance(r, dict) and isinstance(r.get("pos"), list)
                           and len(r["pos"]) == 2 else r for k, r in ui["reroutes"].items()}
    if isinstance(ui.get("notes"), list):
        out["notes"] = [dict(n, pos=move(n["pos"])) if isinstance(n, dict) and isinstance(n.get("pos"), list)
                        and len(n["pos"]) == 2 else n for n in ui["notes"]]
    out.pop("viewport", None)
    return out
