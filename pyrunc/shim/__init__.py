"""containerd shim v2 for pyrunc (`containerd-shim-pyrunc-v1`); never imported by the CLI."""
