"""prediction: what `predict.py` does between Cog and ComfyUI, without Cog's types.

Cog inputs become a ready workflow and input folder (`workflow_source`, `input_files`, `url_inputs`,
`seeds`, guarded by `netguard`); ComfyUI's output files become the returned files
(`output_files`).
"""
