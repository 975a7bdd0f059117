"""Placeholder replaced below."""
def run_soak_bench(device: str = "cpu", frames: int = 10_000, inspections: int = 1_000) -> dict:
    raise NotImplementedError
