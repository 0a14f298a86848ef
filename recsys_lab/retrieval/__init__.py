"""recsys_lab.retrieval: top-k over item vectors.

``topk`` (exact top-k at the speed of the GEMM, the one door every ranking goes through) · ``ann`` (the MIPS index
for candidate generation and its recall against exact top-k; the only pynndescent importer).
"""
