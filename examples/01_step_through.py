"""01 - Step through one residual block: every a^[l], z^[l+1], ... and the gradient split.

Question: what exactly happens inside Andrew Ng's residual block,

    z^[l+1] = W^[l+1] a^[l] + b^[l+1],   a^[l+1] = g(z^[l+1]),
    z^[l+2] = W^[l+2] a^[l+1] + b^[l+2], a^[l+2] = g(z^[l+2] + a^[l]),

and how does the gradient reaching a^[l] divide between the shortcut and the branch?
We build Ng's two-layer dense block and a convolutional BasicBlock, print every named
intermediate (resnet_np.step_through), check a^[l+2] == g(z^[l+2] + a^[l]), run a
backward pass with a random upstream gradient and print dL/da^[l] split into the part
that came along the shortcut and the part that came through the branch.

Run (from the repository root):

    python examples/01_step_through.py                 # writes runs/01_step_through/
    python examples/01_step_through.py --quick --out /tmp/x

Writes results.json (keys in REQUIRED_KEYS) and block_pass.png (RMS of each
intermediate and norm of each gradient of the dense block).
"""
# %%
import argparse
import json
import os

import sys

import numpy as np

try:
    import resnet_np as rn
except ImportError:     # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import resnet_np as rn
from resnet_np import viz
from resnet_np.inspect import gradients_table

REQUIRED_KEYS = ["intermediates", "gradient_split.da_l_shortcut_norm",
                 "gradient_split.da_l_branch_norm", "gradient_split.da_l_norm",
                 "gradient_split.shortcut_share", "a_l2_equals_g_of_sum",
                 "basic_block.intermediates", "basic_block.gradient_split",
                 "basic_block.a_l2_equals_g_of_sum"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Step through one residual block.")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--out", default=os.path.join("runs", "01_step_through"))
    p.add_argument("--seed", type=int, default=0)
    args, _ = p.parse_known_args(argv)     # tolerate a notebook kernel's own arguments
    return args


args = parse_args()
N, FEATURES = (8, 4) if args.quick else (64, 16)
C, HW = (4, 6) if args.quick else (16, 16)
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(args.seed)

# %% [markdown]
# ## 1. Ng's block: two dense layers, a^[l+2] = g(z^[l+2] + a^[l])

# %%
block = rn.DenseResidualBlock(FEATURES, skip=2, activation="relu", rng=args.seed)
a_l = rng.standard_normal((N, FEATURES)).astype(np.float32)
step = rn.step_through(block, a_l)
print(block)
print(step)


# %% [markdown]
# ## 2. Is the output really g(z^[l+2] + a^[l])?

# %%
def equals_g_of_sum(block):
    """a^[l+2] == g(z^[l+2] + shortcut), with g = ReLU written out here."""
    v = block.intermediates()
    k = block.skip
    return bool(np.allclose(v[f"a_l{k}"], np.maximum(v[f"z_l{k}"] + v["shortcut"], 0)))


print("\na^[l+2] == max(z^[l+2] + a^[l], 0):", equals_g_of_sum(block))


# %% [markdown]
# ## 3. Backward: dL/da^[l] = via the shortcut + via the branch

# %%
def gradient_split(block, rng):
    """Backward with a random upstream gradient; norms of the two parts of dL/da^[l]."""
    out = block.intermediates()[f"a_l{block.skip}"]
    block.backward(rng.standard_normal(out.shape).astype(out.dtype))
    g = block.gradients()
    s, b, total = (float(np.linalg.norm(g[key])) for key in ("da_l_shortcut", "da_l_branch", "da_l"))
    return {"da_l_shortcut_norm": s, "da_l_branch_norm": b, "da_l_norm": total,
            "shortcut_share": s / (s + b) if s + b > 0 else 0.0,
            "exact_sum": bool(np.array_equal(g["da_l"], g["da_l_shortcut"] + g["da_l_branch"]))}


def print_split(split):
    print(f"||da_l_shortcut|| = {split['da_l_shortcut_norm']:.4f}   "
          f"||da_l_branch|| = {split['da_l_branch_norm']:.4f}   ||da_l|| = {split['da_l_norm']:.4f}")
    print(f"shortcut share ||s|| / (||s|| + ||b||) = {split['shortcut_share']:.3f};  "
          f"da_l == da_l_shortcut + da_l_branch exactly: {split['exact_sum']}")


split = gradient_split(block, rng)
print()
print(gradients_table(block))
print_split(split)

# %% [markdown]
# ## 4. The same in a convolutional BasicBlock (conv-BN-ReLU-conv-BN, + a^[l], ReLU)

# %%
basic = rn.BasicBlock(C, C, shortcut="identity", rng=args.seed)
x = rng.standard_normal((N, C, HW, HW)).astype(np.float32)
basic_step = rn.step_through(basic, x)
print()
print(basic)
print(basic_step)
basic_split = gradient_split(basic, rng)
print("a^[l+2] == max(z^[l+2] + a^[l], 0):", equals_g_of_sum(basic))
print_split(basic_split)


# %% [markdown]
# ## 5. Save the numbers and a figure

# %%
def intermediates_json(step):
    return {r["name"]: {"label": r["label"], "shape": list(r["shape"]), "mean": r["mean"],
                        "std": r["std"], "zeros": r["zeros"]} for r in step.rows}


results = {
    "intermediates": intermediates_json(step),
    "gradient_split": split,
    "a_l2_equals_g_of_sum": equals_g_of_sum(block),
    "basic_block": {"intermediates": intermediates_json(basic_step),
                    "gradient_split": basic_split,
                    "a_l2_equals_g_of_sum": equals_g_of_sum(basic)},
}
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
viz.plot_block_pass(block, os.path.join(args.out, "block_pass.png"))
print(f"\nwrote {args.out}/results.json and {args.out}/block_pass.png")
