"""Fill a folder with the ComfyUI workflows manifest.json lists, at the commits it records.

    python benchmarks/comfy_corpus/rebuild.py FOLDER [--mirror DIR]

Each file comes from GitHub (raw.githubusercontent.com at the recorded commit) or, with
--mirror, from local git snapshots named DIR/OWNER+NAME/repo (as the session tools fetch them).
The files are other people's work under their own licences (the manifest says which): they are
measured by bench_comfy_corpus.py, not shipped with NodeForge.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

MANIFEST = Path(__file__).with_name("manifest.json")


def from_github(entry: dict) -> bytes:
    path = urllib.request.quote(entry["path"])
    url = f"https://raw.githubusercontent.com/{entry['repo']}/{entry['commit']}/{path}"
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def from_mirror(entry: dict, mirror: Path) -> bytes:
    git_dir = mirror / entry["repo"].replace("/", "+", 1) / "repo"
    return subprocess.run(["git", "-C", str(git_dir), "show", f"{entry['commit']}:{entry['path']}"],
                          check=True, capture_output=True).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--mirror", type=Path, help="read from local git snapshots instead of GitHub")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))["files"]
    failed = 0
    for entry in entries:
        try:
            data = from_mirror(entry, args.mirror) if args.mirror else from_github(entry)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"error: {entry['repo']}/{entry['path']}: {exc}", file=sys.stderr)
            failed += 1
            continue
        (args.folder / entry["name"]).write_bytes(data)
    print(f"{len(entries) - failed} of {len(entries)} files in {args.folder}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
