"""The gradient noise scale (McCandlish et al. 2018): how large a batch a task can use before
steps, not the LR rule, decide the result. `estimator` measures B_simple at fixed weights,
`cli` along a recorded run, `predict` turns it into step-starved / rule-limited labels,
`synthetic` is the problem with a known answer the estimator is checked on."""
