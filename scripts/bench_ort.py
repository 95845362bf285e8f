"""ONNX Runtime reference for scripts/bench.sh: fp32, one thread, the same prompts as
`switchyard bench`. Prints JSON {prompts: {text: {tokens, p50_ms, p90_ms}}}."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

PROMPTS = [
    "How do I write a SQL join across three tables?",
    "Tell me a joke about Python and the people who love it",
    "What's a good way to plan a weekend hiking trip in the Alps with kids?",
    "Can you refactor this Rust function so it doesn't clone the vector on every call?",
]

model_path, tokenizer_path = sys.argv[1], sys.argv[2]
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
tokenizer = Tokenizer.from_file(tokenizer_path)
results = {}
for prompt in PROMPTS:
    ids = np.array([tokenizer.encode(prompt).ids], np.int64)
    for _ in range(10):
        session.run(None, {"input_ids": ids})
    times = []
    for _ in range(200):
        start = time.perf_counter()
        session.run(None, {"input_ids": ids})
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    results[prompt] = {"tokens": int(ids.shape[1]), "p50_ms": times[len(times) // 2], "p90_ms": times[len(times) * 9 // 10]}
print(json.dumps({"prompts": results}))
