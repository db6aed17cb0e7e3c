"""The container process: plans (rootfs.py, plan.py), the init protocol (init.py), the in-container stages."""
