"""recsys_lab.retrieval: top-k over item vectors.

``topk`` (exact top-k at the speed of the GEMM, the one door every ranking goes through) · ``ann`` (the MIPS index
for candidate generation: an exact head plus an hnswlib graph; the only hnswlib importer) · ``graphs`` (the
pynndescent routes, kept for comparison; the only pynndescent importer) · ``hnsw_arrays`` (an hnswlib graph to and
from checked arrays: no pickle) · ``recall`` (an index against exact top-k) · ``neighbours`` (item-to-item neighbours
through the index).
"""
