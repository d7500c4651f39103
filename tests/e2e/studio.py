#!/usr/bin/env python3
"""Drive atelier's studio page in a real browser (Debian's chromium through Playwright), as a
screen reader sees it: every control is found by its label or role.

    python3 tests/e2e/studio.py --base-url http://127.0.0.1:8080 --token TOKEN --out DIR [--photo PNG]

Signs in (a wrong token first, which must be refused), uploads a photo, runs `classic` with three
variations, picks one, paints a mask and runs a masked edit, animates the pick, downloads the
video, and saves the path as a recipe. Writes DIR/NN-step.png screenshots and the downloads
(recipe TOML, its mask, the video, the first stage's picked candidate) plus DIR/result.json
naming them, for tests/tests/studio.rs to replay the recipe with `atelier run`.

Never runs `playwright install`: it uses /usr/bin/chromium (apt-get install -y chromium).
"""

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ATELIER_CHROMIUM", "/usr/bin/chromium")
SLOW = 240_000  # ms: a debug build of classic on a shared 2-core machine is slow


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--photo", type=Path, default=ROOT / "examples/photos/coffee.png")
    ap.add_argument("--expect-note", action="append", default=[], help="text the server's notes on the photo must contain (repeatable)")
    a = ap.parse_args()
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    shot_no = [0]
    console_errors: list[str] = []

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="studio-chromium-") as profile:
        # A fresh profile per run (Playwright passes it as --user-data-dir).
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
            accept_downloads=True,
            viewport={"width": 1280, "height": 1000},
        )
        page = ctx.new_page()
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        # Nothing may leave for the internet: every request must go to the server under test.
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not (r.url.startswith(a.base_url) or r.url.startswith(("blob:", "data:"))) else None)

        def shot(name: str) -> None:
            shot_no[0] += 1
            page.screenshot(path=str(out / f"{shot_no[0]:02d}-{name}.png"), full_page=True)

        def save_download(click, name: str) -> Path:
            with page.expect_download(timeout=SLOW) as d:
                click()
            path = out / (name or d.value.suggested_filename)
            d.value.save_as(str(path))
            return path

        # 1. Start: the page and its files load without a token.
        page.goto(f"{a.base_url}/studio/")
        expect(page).to_have_title("atelier studio")
        shot("open")

        # A wrong token is refused, and says so.
        page.get_by_label("Token").fill("not-the-token-0000000000")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-status")).to_contain_text("Not signed in", timeout=30_000)
        page.get_by_label("Token").fill(a.token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-status")).to_contain_text("Signed in", timeout=60_000)
        assert page.evaluate("sessionStorage.getItem('atelier.studio.token')") == a.token, "the token is kept in sessionStorage"
        shot("signed-in")

        page.get_by_label("Source image").set_input_files(str(a.photo))
        expect(page.locator("#current-caption")).to_contain_text("Source:", timeout=60_000)
        notes = page.get_by_role("list", name="What the server read from the image")
        expect(notes).to_contain_text("px")
        expect(notes).to_contain_text("colour profile")
        for note in a.expect_note:
            expect(notes).to_contain_text(note)
        shot("source")

        # 2–3. A stage: classic, three variations, seed 7; the candidates arrive in the grid.
        page.get_by_label("Engine", exact=True).select_option("classic")
        expect(page.get_by_label("Engine", exact=True)).to_have_value("classic")
        page.get_by_label("Stage name").fill("explore")
        page.get_by_label("Prompt", exact=True).fill("oil painting, warmer, vignette")
        page.get_by_label("Variations").fill("3")
        page.get_by_label("Seed").fill("7")
        # The engine's own parameters, as controls built from its param specs.
        page.get_by_text("Engine parameters —").click()
        params = page.get_by_role("group", name="Engine parameters")
        params.get_by_label("strength", exact=True).fill("0.8")
        params.get_by_label("style", exact=True).select_option("oil-painting")
        expect(page.locator("#params-summary")).to_contain_text("2 of")
        expect(page.locator("#estimate")).to_contain_text("0.00 USD", timeout=30_000)
        page.get_by_role("button", name="Generate").click()
        use = page.get_by_role("button", name="Use this", exact=True)
        expect(use).to_have_count(3, timeout=SLOW)
        grid = page.get_by_role("list", name="Candidates")
        expect(grid.get_by_role("img")).to_have_count(3)
        for seed in ("7", "8", "9"):
            expect(grid).to_contain_text(re.compile(rf"seed\s*{seed}"))
        expect(grid).to_contain_text("classic")
        expect(grid).to_contain_text("0.00 USD")
        # Compare: the source against candidate 2, half and half.
        page.get_by_label("Left").select_option("source")
        page.get_by_label("Right").select_option("2")
        page.get_by_label("Compare position").fill("30")
        shot("candidates")
        # The README's picture (docs/studio.jpg is a copy): the top of the page, small.
        page.set_viewport_size({"width": 1100, "height": 820})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(out / "readme.jpg"), type="jpeg", quality=70)
        page.set_viewport_size({"width": 1280, "height": 1000})

        # The picked candidate is downloaded with its provenance, to compare with the replay.
        card2 = grid.get_by_role("listitem").nth(1)
        pick_png = save_download(lambda: card2.get_by_role("link", name=re.compile("^Download explore candidate 2")).click(), "explore-pick.png")
        assert pick_png.read_bytes().startswith(b"\x89PNG"), "the candidate is a PNG"
        use.nth(1).click()
        expect(page.locator("#current-caption")).to_contain_text("explore #2")
        shot("picked")

        # 4. Edit a region: paint with the mouse, then a keyboard stroke.
        canvas = page.get_by_label("Mask brush")
        expect(canvas).to_be_visible()
        page.get_by_label("Brush size").fill("60")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box, "the mask canvas is on screen"
        cx, cy = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
        page.mouse.move(cx - box["width"] * 0.15, cy)
        page.mouse.down()
        for k in range(1, 11):
            page.mouse.move(cx - box["width"] * 0.15 + k * box["width"] * 0.03, cy + (k % 3) * 4)
        page.mouse.up()
        expect(page.locator("#mask-status")).to_contain_text("Mask covers")
        canvas.focus()
        for _ in range(3):
            page.keyboard.press("Shift+ArrowDown")
        expect(page.locator("#mask-status")).to_contain_text("Mask covers")
        expect(page.get_by_label("Send the painted mask (edit only that region)")).to_be_checked()
        shot("mask")

        page.get_by_label("Stage name").fill("edit")
        page.get_by_label("Prompt", exact=True).fill("remove")
        # Parameters stay from the last stage until changed: this stage removes, at default strength.
        params.get_by_label("style", exact=True).select_option("remove")
        params.get_by_label("strength", exact=True).fill("")
        expect(page.locator("#params-summary")).to_contain_text("1 of")
        page.get_by_label("Variations").fill("1")
        page.get_by_label("Seed").fill("11")
        page.get_by_role("button", name="Generate").click()
        expect(page.get_by_role("heading", name=re.compile("Candidates — edit"))).to_be_visible(timeout=SLOW)
        expect(use).to_have_count(1, timeout=SLOW)
        edit_prov = save_download(lambda: grid.get_by_role("link", name=re.compile("^Download the provenance of edit candidate 1")).click(), "edit-candidate-1.png.json")
        prov = json.loads(edit_prov.read_text())
        assert prov.get("mask"), f"the masked edit's provenance records the mask: {prov}"
        assert prov.get("engine") == "classic" and prov.get("seed") == 11 and prov.get("user_params") == [["style", "remove"]], prov
        use.first.click()
        expect(page.locator("#current-caption")).to_contain_text("edit #1")
        shot("edit")

        # 5. Animate the pick with classic (an animated GIF), play and download it.
        page.get_by_label("Video engine").select_option("classic")
        page.get_by_label("Video prompt").fill("slow zoom in")
        page.get_by_role("button", name="Animate").click()
        video_link = page.get_by_role("link", name=re.compile(r"^Download the video \("))
        expect(video_link).to_be_visible(timeout=SLOW)
        media = page.locator("#video-media")
        expect(media).to_be_visible()
        page.wait_for_function("() => { const m = document.getElementById('video-media'); return m && (m.naturalWidth > 0 || m.readyState >= 2); }", timeout=30_000)
        video = save_download(lambda: video_link.click(), "")
        head = video.read_bytes()[:6]
        assert head in (b"GIF89a", b"GIF87a"), f"classic's video is a GIF: {head!r}"
        vprov = save_download(lambda: page.get_by_role("link", name="Download the video's provenance").click(), "")
        vp = json.loads(vprov.read_text())
        assert vp.get("engine") == "classic" and vp.get("video") is True, vp
        shot("video")

        # 6. History and the recipe.
        history = page.get_by_role("navigation", name="History")
        expect(history.get_by_role("listitem")).to_have_count(4)  # source, explore, edit, animate
        page.get_by_role("button", name="Save as recipe").click()
        expect(page.locator("#recipe-status")).to_contain_text("Saved", timeout=60_000)
        files = page.locator("#recipe-files").get_by_role("link")
        names = [files.nth(i).inner_text() for i in range(files.count())]
        assert names and names[0].endswith(".toml"), names
        saved = [save_download(lambda: files.nth(i).click(), name) for i, name in enumerate(names)]
        recipe, extra = saved[0], saved[1:]
        text = recipe.read_text()
        assert "[[stage]]" in text and 'engine = "classic"' in text and "pick = 2" in text and "animate = true" in text, text
        assert 'params = { strength = "0.8", style = "oil-painting" }' in text, text
        assert any(p.name.endswith("-mask.png") for p in extra), f"the edit stage's mask is saved beside the recipe: {extra}"
        # Reopen the first stage from the history strip: its candidates come back.
        history.get_by_role("button", name=re.compile(r"^1\. explore")).click()
        expect(use).to_have_count(3)
        shot("recipe")

        # Keyboard: every control is reachable with Tab (nothing focusable lacks a name).
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll('button, input, select, textarea, a[href], canvas[tabindex]')]
                 .filter(e => e.offsetParent !== null)
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.textContent || '').trim())
                 .map(e => e.outerHTML.slice(0, 80))"""
        )
        assert not unnamed, f"controls without an accessible name: {unnamed}"
        assert not outside, f"the page reached outside the server: {outside}"
        ctx.close()

    result = {"recipe": str(recipe), "files": [str(p) for p in extra], "photo": str(a.photo), "explore_pick": str(pick_png), "video": str(video), "console_errors": console_errors}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
