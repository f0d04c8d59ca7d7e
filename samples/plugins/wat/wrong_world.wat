;; A component of another world: it exports `greet`, not
;; `wrun:plugin/handler`. Loading it must fail with a typed error naming the
;; missing export.
(component
  (core module $m
    (func (export "greet")))
  (core instance $i (instantiate $m))
  (func $greet (canon lift (core func $i "greet")))
  (export "greet" (func $greet)))
