;; `upper`: a well-behaved plugin of the wrun:plugin world.
;;
;; For a request named "upper" it answers the payload in upper case (ASCII),
;; prefixed with the value of the config key "prefix" when the host set one,
;; and logs one line at `info`. Any other request name is answered with the
;; plugin's own error {code 1, "unknown operation"}.
;;
;; A core module implementing the canonical ABI by hand; the build script
;; makes it a component with wit-component. Memory layout:
;;   0..1024     constant strings
;;   1024..1044  the result area of `call` (result<response, plugin-error>)
;;   1048..1060  the return area of `config.get` (option<string>)
;;   4096..      a bump heap, reset by `cabi_post_…#call` after every call
(module
  (import "wrun:plugin/log@0.1.0" "log" (func $log (param i32 i32 i32)))
  (import "wrun:plugin/config@0.1.0" "get" (func $config_get (param i32 i32 i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  (data (i32.const 0) "upper")              ;; 0, 5: the operation
  (data (i32.const 16) "prefix")            ;; 16, 6: the config key
  (data (i32.const 32) "text/plain")        ;; 32, 10: content type
  (data (i32.const 48) "unknown operation") ;; 48, 17: error message
  (data (i32.const 80) "upper: handling a request") ;; 80, 25: log line

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

  ;; 1 if the `len` bytes at `a` and `b` are equal.
  (func $eq (param $a i32) (param $b i32) (param $len i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  (func (export "wrun:plugin/handler@0.1.0#call")
    (param $name i32) (param $name_len i32) (param $payload i32) (param $payload_len i32)
    (result i32)
    (local $prefix i32) (local $prefix_len i32) (local $out i32) (local $i i32) (local $c i32)

    ;; log(info, "upper: handling a request")
    (call $log (i32.const 2) (i32.const 80) (i32.const 25))

    ;; an unknown operation is the plugin's own error
    (if (i32.eqz (i32.and (i32.eq (local.get $name_len) (i32.const 5))
                          (call $eq (local.get $name) (i32.const 0) (i32.const 5))))
      (then
        (i32.store8 (i32.const 1024) (i32.const 1))
        (i32.store (i32.const 1028) (i32.const 1))
        (i32.store (i32.const 1032) (i32.const 48))
        (i32.store (i32.const 1036) (i32.const 17))
        (return (i32.const 1024))))

    ;; config.get("prefix")
    (call $config_get (i32.const 16) (i32.const 6) (i32.const 1048))
    (if (i32.load8_u (i32.const 1048))
      (then
        (local.set $prefix (i32.load (i32.const 1052)))
        (local.set $prefix_len (i32.load (i32.const 1056)))))

    ;; out = prefix ++ upper(payload)
    (local.set $out
      (call $cabi_realloc (i32.const 0) (i32.const 0) (i32.const 1)
        (i32.add (local.get $prefix_len) (local.get $payload_len))))
    (memory.copy (local.get $out) (local.get $prefix) (local.get $prefix_len))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $payload_len)))
        (local.set $c (i32.load8_u (i32.add (local.get $payload) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97))
                     (i32.le_u (local.get $c) (i32.const 122)))
          (then (local.set $c (i32.sub (local.get $c) (i32.const 32)))))
        (i32.store8
          (i32.add (i32.add (local.get $out) (local.get $prefix_len)) (local.get $i))
          (local.get $c))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))

    ;; ok(response { content-type: "text/plain", payload: out })
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 32))
    (i32.store (i32.const 1032) (i32.const 10))
    (i32.store (i32.const 1036) (local.get $out))
    (i32.store (i32.const 1040) (i32.add (local.get $prefix_len) (local.get $payload_len)))
    (i32.const 1024))
)
