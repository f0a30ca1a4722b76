"""Writing output files without ever costing data: `neurofabric.safe_io`, as the host imports it.

The module sits below the parts (the boards write their build reports with it too).
"""

from neurofabric.safe_io import atomic_output, atomic_output_path, check_output_folder, check_output_path

__all__ = ["check_output_path", "check_output_folder", "atomic_output", "atomic_output_path"]
