"""Print how many tests that need a system service ran, and how many skipped, from pytest's JUnit XML."""

import sys
import xml.etree.ElementTree as ET

SERVICES = {
    "bubblewrap (bwrap level)": ("bwrap",),
    "docker / podman": ("docker", "podman"),
    "redis-server": ("redis",),
    "chromium": ("browser", "viewer/test_browser"),
    "e2b (fake envd)": ("e2b",),
}


def main(path: str) -> None:
    counts = {name: [0, 0] for name in SERVICES}
    for case in ET.parse(path).getroot().iter("testcase"):
        ident = f"{case.get('classname', '')}.{case.get('name', '')}".lower()
        skipped = case.find("skipped") is not None
        for name, needles in SERVICES.items():
            if any(needle in ident for needle in needles):
                counts[name][1 if skipped else 0] += 1
    print("tests that need a service:")
    for name, (ran, skipped) in counts.items():
        print(f"  {name}: {ran} ran, {skipped} skipped")


if __name__ == "__main__":
    main(sys.argv[1])
