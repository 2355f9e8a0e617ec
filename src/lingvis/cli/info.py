"""`lingvis presets`: list model presets and parameter counts."""
from __future__ import annotations


def register(sub, groups) -> None:
    p = sub.add_parser("presets", help="list model presets", description="List named model presets.")
    p.add_argument("--family", help="only this family")
    p.add_argument("--count", action="store_true", help="build each preset and count its parameters (slow)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models import registry

    for name in registry.list_presets(args.family):
        fam, _, desc = registry.PRESETS[name]
        extra = ""
        if args.count:
            extra = f"  {sum(p.numel() for p in registry.build(name).parameters()):,} params"
        print(f"{name:24s} {fam:10s} {desc}{extra}")
    return 0
