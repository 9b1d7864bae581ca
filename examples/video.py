"""Anonymise a video (or a stream) with one steady synthetic identity per person; print one line per track.

    python examples/video.py ../shared/data/video/single_face.mp4 out/single_face.mp4
    python examples/video.py rtsp://camera/stream out/live.mp4      # Ctrl-C ends it; the file stays playable
"""

from __future__ import annotations

import sys
from pathlib import Path

import condanon
from condanon.video import VideoAnonymizer


def main(source: str, target: str) -> None:
    """Anonymise ``source`` into ``target`` and print the per-track report."""
    runner = VideoAnonymizer(condanon.Anonymizer(method="synthetic", seed=0), detect_every=5)
    report = runner.run(source, Path(target))
    report.write_beside(target)  # <stem>.tracks.json and <stem>.boxes.csv (per-frame boxes), as the CLI writes them
    print(f"{report.frames_written} frames at {report.fps:.1f} fps, audio {report.audio}")
    for track in report.to_dict()["tracks"]:
        before = track["attributes_before"] or {}
        print(f"track {track['track']}: frames {track['first_frame']}-{track['last_frame']}, {track['verdict']}, "
              f"{before.get('sex')}, {before.get('age')} y, {before.get('emotion')}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
