;; not_a_command: a valid component of another world. It exports a `greet`
;; function but not wasi:cli/run, so it cannot be run as a command.
(component
  (core module $M (func (export "greet")))
  (core instance $m (instantiate $M))
  (func (export "greet") (canon lift (core func $m "greet"))))
