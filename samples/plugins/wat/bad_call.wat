;; A component that exports `wrun:plugin/handler@0.1.0` with a `call` of the
;; wrong type (no parameters, no result). Loading it must fail with a typed
;; error naming the export.
(component
  (core module $m
    (func (export "call")))
  (core instance $i (instantiate $m))
  (func $call (canon lift (core func $i "call")))
  (instance $handler (export "call" (func $call)))
  (export "wrun:plugin/handler@0.1.0" (instance $handler)))
