"""The probes' last dump as a table: CPU per call and per frame a component received.

    pieces.py PROBE_OUT
"""
import ast
import sys

FRAMES = "executor: a component takes a frame#"  # one call per frame a component received


def main(path: str) -> None:
    last = open(path).read().strip().splitlines()[-1]
    pieces = ast.literal_eval(last)
    frames = pieces[FRAMES]
    print(f"{frames} frames received by the components\n")
    print("| piece | calls | µs a call | ms per frame received |")
    print("|---|---|---|---|")
    for name in sorted(k for k in pieces if not k.endswith("#")):
        calls = pieces[name + "#"]
        print(f"| {name} | {calls} | {pieces[name] / calls * 1e6:.0f} | {pieces[name] / frames * 1e3:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1])
