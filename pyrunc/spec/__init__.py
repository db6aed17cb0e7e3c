"""The OCI runtime spec side: schemas and validation of config.json, process.json and state documents."""
