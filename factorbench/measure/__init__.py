"""Measuring: the correctness check, the timer, the size model, machine facts, floors, threads and CPUs, and the runner."""
