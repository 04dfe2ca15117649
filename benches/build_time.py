#!/usr/bin/env python3
"""What adding tower-sovendus costs a shop's clean build, and how much the TLS choice saves.

Builds the same small axum + tower-sessions shop four ways, each from an empty target folder
(the crates' sources already downloaded, as on a developer's machine): without tower-sovendus,
and with it on the default features (TLS by rustls on aws-lc-rs), on `native-tls` and on
`rustls-ring` (both with `default-features = false, features = ["axum", ...]`, the README's
line). The builds take turns, the first changing each round; each round's ratios to the build
without the crate are kept, and the medians reported. Rewrites BENCHMARKS.md between the
`build-time` markers.

    python3 benches/build_time.py            # ROUNDS=3 by default; PROFILE=release for release builds
"""

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
START, END = "<!-- build-time:start -->", "<!-- build-time:end -->"
ROUNDS = int(os.environ.get("ROUNDS", "3"))
PROFILE = os.environ.get("PROFILE", "dev")

COMMON = """axum = "0.8"
tokio = { version = "1", features = ["macros", "rt-multi-thread", "net"] }
tower = "0.5"
tower-sessions = "0.14"
"""

VARIANTS = {
    "without tower-sovendus": None,
    "default features (rustls on aws-lc-rs)": "",
    "native-tls": ', default-features = false, features = ["axum", "native-tls"]',
    "rustls-ring": ', default-features = false, features = ["axum", "rustls-ring"]',
}

WITHOUT = """use axum::{Router, routing::{get, post}};
use tower::ServiceBuilder;
use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};

async fn order() -> &'static str {
    "thank you"
}

#[tokio::main]
async fn main() {
    let app = Router::new().route("/", get(|| async { "welcome" })).route("/order", post(order)).layer(
        ServiceBuilder::new().layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
"""

WITH = """use axum::{Router, routing::{get, post}};
use tower::ServiceBuilder;
use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
use tower_sovendus::{SovendusConfig, SovendusConversion, SovendusLayer};

async fn order(conversion: SovendusConversion) -> &'static str {
    if let Err(error) = conversion.send().await {
        eprintln!("Sovendus conversion kept for a later attempt: {error}");
    }
    "thank you"
}

#[tokio::main]
async fn main() {
    let config = SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX").unwrap();
    let app = Router::new().route("/", get(|| async { "welcome" })).route("/order", post(order)).layer(
        ServiceBuilder::new()
            .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax))
            .layer(SovendusLayer::new(config)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
"""


def project(folder, features):
    folder.mkdir(parents=True)
    (folder / "src").mkdir()
    dependency = "" if features is None else f'tower-sovendus = {{ path = "{ROOT}"{features} }}\n'
    (folder / "Cargo.toml").write_text(
        f'[package]\nname = "shop"\nversion = "0.1.0"\nedition = "2024"\n\n[dependencies]\n{COMMON}{dependency}'
    )
    (folder / "src" / "main.rs").write_text(WITHOUT if features is None else WITH)
    subprocess.run(["cargo", "fetch", "--quiet"], cwd=folder, check=True)


def crates(folder):
    """The packages a build compiles, and whether aws-lc-sys is among them."""
    tree = subprocess.run(["cargo", "tree", "--edges", "normal,build", "--prefix", "none"], cwd=folder,
                          check=True, capture_output=True, text=True).stdout
    packages = {line.split(" (")[0].removesuffix(" (*)") for line in tree.splitlines() if line.strip()}
    return len(packages), any(package.startswith("aws-lc-sys ") for package in packages)


def clean_build(folder):
    subprocess.run(["rm", "-rf", str(folder / "target")], check=True)
    started = time.monotonic()
    subprocess.run(["cargo", "build", "--quiet", "--offline", "--profile", PROFILE], cwd=folder, check=True)
    return time.monotonic() - started


def main():
    with tempfile.TemporaryDirectory(prefix="tower-sovendus-build-time-") as scratch:
        folders = {name: Path(scratch) / f"shop-{i}" for i, name in enumerate(VARIANTS)}
        for name, features in VARIANTS.items():
            project(folders[name], features)
        names = list(VARIANTS)
        times = {name: [] for name in names}
        for round in range(ROUNDS):
            order = names[round % len(names):] + names[:round % len(names)]
            for name in order:
                times[name].append(clean_build(folders[name]))
                print(f"round {round + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
        baseline = names[0]
        rows = ["| Build | Crates | aws-lc-sys | Clean build | vs without |", "|---|---|---|---|---|"]
        for name in names:
            count, aws_lc = crates(folders[name])
            ratios = [t / b for t, b in zip(times[name], times[baseline])]
            rows.append(f"| {name} | {count} | {'yes' if aws_lc else 'no'} | "
                        f"{statistics.median(times[name]):.1f} s | {statistics.median(ratios):.2f} × |")
    profile = "Cargo's dev profile" if PROFILE == "dev" else f"the `{PROFILE}` profile"
    section = "\n".join(rows) + f"\n\nMedians of {ROUNDS} rounds, {profile}, from an empty target folder."
    text = BENCHMARKS.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    BENCHMARKS.write_text(f"{before}{START}\n{section}\n{END}{after}")
    print(section)


if __name__ == "__main__":
    main()
