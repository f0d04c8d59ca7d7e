;; A component that imports an interface no wrun host offers
;; (`acme:db/query`). Loading it must fail with a typed error naming it.
(component
  (import "acme:db/query@1.0.0" (instance $db
    (export "run" (func))))
  (core module $m
    (func (export "greet")))
  (core instance $i (instantiate $m))
  (func $greet (canon lift (core func $i "greet")))
  (export "greet" (func $greet)))
