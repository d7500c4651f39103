#!/usr/bin/env bash
# Issue 13's benchmark: a 12 MP JPEG in, a JPEG out, atelier (whole process, release binary; the
# wasm filters and, pinned for this run only, the native tier) against libvips 8.14 in the same run:
#   1. a 2000 px wide thumbnail: `atelier filter --step resize:width=2000` vs `vips thumbnail`
#      (whole process each; both shrink on load, decoding the JPEG at a reduced DCT scale, and
#      both write quality 90);
#   2. the 5-step chain (resize 2000w → crop 1600x1200 → adjust → sharpen → watermark): atelier's
#      whole process vs the same chain in pyvips, timed in-process (the Python start excluded).
# Runs are interleaved, so every contender sees the same machine load; prints best and median
# and the ratios atelier/libvips and wasm/native.
#
#   tests/benches/libvips.sh                 # RUNS=7 by default
#   RUNS=11 ATELIER_BIN=… ATELIER_PLUGINS_DIR=… tests/benches/libvips.sh
#
# Needs target/release/atelier and target/plugins/{filters,filters-native} (`cargo xtask build`,
# run here when they are missing). Installs libvips-tools (apt-get, as root) and pyvips (pip, in
# a venv under target/) when missing; without them it says so and skips libvips.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-7}
BIN=${ATELIER_BIN:-$ROOT/target/release/atelier}
PLUGINS=${ATELIER_PLUGINS_DIR:-$ROOT/target/plugins}

if [ ! -x "$BIN" ] || [ ! -f "$PLUGINS/filters/plugin.wasm" ] || [ ! -f "$PLUGINS/filters-native/plugin.toml" ]; then
    echo "building the host and the plugins (cargo xtask build)…" >&2
    (cd "$ROOT" && cargo xtask build >&2)
fi

if ! command -v vips >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "installing libvips-tools (apt-get)…" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q libvips-tools >&2 || true
    fi
fi
VENV="$ROOT/target/bench-pyvips"
PY=python3
if command -v vips >/dev/null 2>&1; then
    if ! python3 -c 'import pyvips' >/dev/null 2>&1; then
        if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pyvips' >/dev/null 2>&1; then
            echo "installing pyvips (pip, in $VENV)…" >&2
            { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q pyvips; } >&2 || true
        fi
        [ -x "$VENV/bin/python" ] && PY="$VENV/bin/python"
    fi
else
    echo "libvips: not available (apt-get install libvips-tools) — only atelier is measured" >&2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export ROOT RUNS BIN PLUGINS WORK
exec "$PY" - <<'PYEOF'
import hashlib, os, shutil, statistics, subprocess, sys, time

root, runs, binary, plugins, work = (os.environ[k] for k in ("ROOT", "RUNS", "BIN", "PLUGINS", "WORK"))
runs = int(runs)
have_vips = shutil.which("vips") is not None
try:
    import pyvips
except Exception:
    pyvips = None

big = os.path.join(work, "big.jpg")
if have_vips:
    # Photo content plus sensor-like noise at 4000x3000, so the JPEG has real detail to decode.
    coffee = os.path.join(root, "examples/photos/coffee.png")
    subprocess.run(["vips", "resize", coffee, f"{work}/up.v", str(4000 / 600), "--vscale", str(3000 / 400)], check=True)
    subprocess.run(["vips", "gaussnoise", f"{work}/noise.v", "4000", "3000", "--sigma", "12", "--mean", "0"], check=True)
    subprocess.run(["vips", "add", f"{work}/up.v", f"{work}/noise.v", f"{work}/sum.v"], check=True)
    subprocess.run(["vips", "cast", f"{work}/sum.v", f"{work}/sum8.v", "uchar"], check=True)
    subprocess.run(["vips", "jpegsave", f"{work}/sum8.v", big, "--Q", "90"], check=True)
else:
    subprocess.run([binary, "--plugins", plugins, "filter", os.path.join(root, "examples/photos/coffee.png"),
                    "--step", "resize:width=4000,height=3000", "-o", big], check=True, stdout=subprocess.DEVNULL)

# The native tier, pinned for this run only: the operator's line, with the library's real sha256.
lib_dir = os.path.join(plugins, "filters-native")
lib = next(os.path.join(lib_dir, f) for f in os.listdir(lib_dir) if f != "plugin.toml")
sha = hashlib.sha256(open(lib, "rb").read()).hexdigest()
native_cfg = os.path.join(work, "native.toml")
open(native_cfg, "w").write(f'[plugins.filters-native]\nnative_sha256 = "{sha}"\n')
wasm_cfg = os.path.join(work, "wasm.toml")
open(wasm_cfg, "w").write("")
env = dict(os.environ, ATELIER_CACHE_DIR=os.path.join(work, "cache"), ATELIER_STATE_DIR=os.path.join(work, "state"))

CHAIN = ["resize:width=2000", "crop:width=1600,height=1200,gravity=center",
         "adjust:brightness=1.05,contrast=1.1,saturation=1.2", "sharpen:amount=0.8,sigma=1",
         "watermark:text=© atelier,opacity=0.6"]

def atelier(cfg, steps, out):
    cmd = [binary, "--config", cfg, "--plugins", plugins, "filter", big]
    for s in steps:
        cmd += ["--step", s]
    return cmd + ["-o", out, "--force"]

def run_process(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t

def vips_chain(out):
    # The same chain in pyvips: shrink-on-load thumbnail to 2000 wide, centre crop, brightness
    # and contrast around mid-grey, saturation in LCh, unsharp mask (sigma 1, amount 0.8), text.
    t = time.perf_counter()
    im = pyvips.Image.thumbnail(big, 2000)
    im = im.crop((im.width - 1600) // 2, (im.height - 1200) // 2, 1600, 1200)
    im = (im * 1.05 - 128) * 1.1 + 128
    lch = im.colourspace("lch")
    im = (lch * [1, 1.2, 1]).colourspace("srgb")
    im = im.sharpen(sigma=1.0, m1=0, m2=0.8 * 3)
    text = pyvips.Image.text("© atelier", dpi=150, font="DejaVu Sans Bold")
    mark = text.new_from_image([255, 255, 255]).bandjoin((text * 0.6).cast("uchar")).copy(interpretation="srgb")
    im = im.cast("uchar").copy(interpretation="srgb").bandjoin(255)
    im = im.composite2(mark, "over", x=im.width - mark.width - 32, y=im.height - mark.height - 32)
    im.flatten().jpegsave(out, Q=90)
    return time.perf_counter() - t

contenders = {
    "thumbnail": [
        ("atelier (wasm)", lambda: run_process(atelier(wasm_cfg, ["resize:width=2000"], f"{work}/t-wasm.jpg"))),
        ("atelier (native tier)", lambda: run_process(atelier(native_cfg, ["resize:width=2000"], f"{work}/t-native.jpg"))),
    ],
    "chain": [
        ("atelier (wasm)", lambda: run_process(atelier(wasm_cfg, CHAIN, f"{work}/c-wasm.jpg"))),
        ("atelier (native tier)", lambda: run_process(atelier(native_cfg, CHAIN, f"{work}/c-native.jpg"))),
    ],
}
if have_vips:
    contenders["thumbnail"].append(("vips thumbnail (process)", lambda: run_process(["vips", "thumbnail", big, f"{work}/t-vips.jpg[Q=90]", "2000"])))
if pyvips is not None:
    contenders["chain"].append(("pyvips (in-process)", lambda: vips_chain(f"{work}/c-vips.jpg")))
elif have_vips:
    print("pyvips: not importable (pip install pyvips) — the libvips chain is skipped")

# Warm-up: compiles the wasm component into the cache, loads the pages of every binary.
for group in contenders.values():
    for _, f in group:
        f()
times = {(g, name): [] for g, group in contenders.items() for name, _ in group}
for _ in range(runs):
    for g, group in contenders.items():
        for name, f in group:
            times[(g, name)].append(f())

print(f"12 MP JPEG ({os.path.getsize(big) >> 10} KiB, 4000x3000) in, JPEG out; {runs} interleaved runs; "
      f"{os.cpu_count()} CPUs; libvips {subprocess.run(['vips', '--version'], capture_output=True, text=True).stdout.strip() if have_vips else 'absent'}")
def stat(g, name):
    v = sorted(times[(g, name)])
    return v[0], statistics.median(v)
for g, title in (("thumbnail", "2000 px thumbnail"), ("chain", "5-step chain (resize 2000w → crop 1600x1200 → adjust → sharpen → watermark)")):
    print(f"\n{title}:                     best      median")
    for name, _ in contenders[g]:
        b, m = stat(g, name)
        print(f"  {name:<28} {b * 1000:8.1f} ms {m * 1000:8.1f} ms")
    base = [n for n, _ in contenders[g] if "vips" in n]
    for name, _ in contenders[g]:
        if base and "atelier" in name:
            (b, m), (vb, vm) = stat(g, name), stat(g, base[0])
            print(f"  ratio {name} / {base[0]}: best {b / vb:.2f}x, median {m / vm:.2f}x   (goal ≤ 0.8x)")
    (wb, wm), (nb, nm) = stat(g, "atelier (wasm)"), stat(g, "atelier (native tier)")
    print(f"  ratio wasm / native tier (whole process): best {wb / nb:.2f}x, median {wm / nm:.2f}x")
outputs = ["t-wasm.jpg", "t-vips.jpg", "c-wasm.jpg", "c-vips.jpg"]
print("\noutputs (JPEG quality 90 each): " + ", ".join(
    f"{f} {os.path.getsize(os.path.join(work, f)) >> 10} KiB" for f in outputs if os.path.exists(os.path.join(work, f))))
print("\ncommands:")
print("  " + " ".join(atelier("wasm.toml", ["resize:width=2000"], "t.jpg")).replace(work + "/", ""))
print("  " + " ".join(atelier("native.toml", CHAIN, "c.jpg")).replace(work + "/", ""))
print("  vips thumbnail big.jpg t.jpg[Q=90] 2000")
PYEOF
