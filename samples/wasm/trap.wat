;; trap: executes `unreachable`, the simplest guest fault.
(module
  (memory (export "memory") 1)
  (func $fail unreachable)
  (func (export "_start") (call $fail)))
