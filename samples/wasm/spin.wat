;; spin: loops forever without calling the host (for timeouts and fuel).
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
