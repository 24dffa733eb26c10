"""Which of the GPU machine's packages break under the Triton stub's NumPy 1.26?

    python3 perf/gpu_stub_probe.py /tmp/gpu_proof     # prints a comma-separated block list

Builds the stub's environment the way ``perf.gpu_proof`` does, then imports
CLIP's modelling code with that environment's ``python3``. While the import
fails inside a package of the machine's site-packages, that package is added
to the block list (``sys.modules[name] = None``: absent to ``find_spec``, so
transformers does not try it) and the import is tried again. Prints each
failure's last lines to stderr and the final list to stdout, for
``GPU_PROOF_STUB_BLOCK``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from perf.gpu_proof import stub_environment

PROBE = "import transformers.models.clip.modeling_clip; print('CLIP import ok')"
SITE_FILE = re.compile(r'File "[^"]*/(?:site|dist)-packages/([A-Za-z0-9_]+)/')
ALWAYS_NEEDED = {"transformers", "torch", "numpy", "tokenizers", "safetensors", "huggingface_hub"}


def main(work: Path) -> int:
    blocked = ["scipy"]  # sklearn was found this way on the H200 image (2026-11)
    for _ in range(5):
        os.environ["GPU_PROOF_STUB_BLOCK"] = ",".join(blocked)
        stub_bin, _ = stub_environment(work / "stubenv", work / "stub-site")
        done = subprocess.run(
            [str(stub_bin / "python3"), "-c", PROBE], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            print(f"probe: CLIP imports with {blocked}", file=sys.stderr)
            print(",".join(blocked))
            return 0
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        print(f"probe: blocked {blocked}, import failed:\n{tail}\n", file=sys.stderr)
        culprits = [p for p in SITE_FILE.findall(done.stderr) if p not in ALWAYS_NEEDED]
        if not culprits or culprits[-1] in blocked:
            break
        blocked.append(culprits[-1])
    print(",".join(blocked))
    return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
