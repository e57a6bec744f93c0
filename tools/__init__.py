"""Accelerator-node tools: the wheelhouse for offline nodes (`make wheelhouse`) and the device check
(`make device-check`)."""
