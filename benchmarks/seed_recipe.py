"""The seed's recipe as written (``wm_agents.bench.seed_recipe``): run it, or ask why it fails.

python benchmarks/seed_recipe.py            # diagnose: what the model predicts, how it picks
python benchmarks/sample_efficiency.py run --method seed_recipe   # the 5-seed curve
"""

import json
import sys

import torch

from wm_agents.bench.seed_recipe import diagnose

if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(diagnose(int(sys.argv[1]) if len(sys.argv) > 1 else 0), indent=1))
