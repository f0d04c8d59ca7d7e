;; `echo`: the trivial plugin, for benchmarks. Imports nothing; answers
;; ok(response { content-type: "application/octet-stream", payload }) with the
;; request's own payload.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 0) "application/octet-stream")

  (func $cabi_realloc (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32)
    (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $p) (local.get $new_size)))
    (block $ok
      (loop $grow
        (br_if $ok (i32.le_u (global.get $heap)
                             (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
          (then unreachable))
        (br $grow)))
    (if (local.get $old)
      (then (memory.copy (local.get $p) (local.get $old) (local.get $old_size))))
    (local.get $p))

  (func (export "cabi_post_wrun:plugin/handler@0.1.0#call") (param i32)
    (global.set $heap (i32.const 4096)))

  (func (export "wrun:plugin/handler@0.1.0#call")
    (param $name i32) (param $name_len i32) (param $payload i32) (param $payload_len i32)
    (result i32)
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 0))
    (i32.store (i32.const 1032) (i32.const 24))
    (i32.store (i32.const 1036) (local.get $payload))
    (i32.store (i32.const 1040) (local.get $payload_len))
    (i32.const 1024))
)
