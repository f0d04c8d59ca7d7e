;; hello: prints a greeting, then every argument and every environment
;; variable on a line of its own, and returns normally (exit code 0).
;;
;;   hello from wasm
;;   arg: <argv[0]>
;;   arg: ...
;;   env: KEY=VALUE
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 0..16: iovec and scratch; 16..: strings; 4096..: argv/environ arrays;
  ;; 8192..: argv/environ string buffers (page 2 is room for them).
  (data (i32.const 16) "hello from wasm\n")
  (data (i32.const 32) "arg: ")
  (data (i32.const 40) "env: ")
  (data (i32.const 48) "\n")

  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Prints `prefix` then each of `count` C strings listed at `array`.
  (func $print_list (param $prefix i32) (param $array i32) (param $count i32)
    (local $i i32) (local $s i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $s (i32.load (i32.add (local.get $array) (i32.shl (local.get $i) (i32.const 2)))))
        (call $write (local.get $prefix) (i32.const 5))
        (call $write (local.get $s) (call $strlen (local.get $s)))
        (call $write (i32.const 48) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  (func (export "_start")
    (local $argc i32) (local $envc i32)
    (call $write (i32.const 16) (i32.const 16))
    (drop (call $args_sizes_get (i32.const 8) (i32.const 12)))
    (local.set $argc (i32.load (i32.const 8)))
    (drop (call $args_get (i32.const 4096) (i32.const 8192)))
    (call $print_list (i32.const 32) (i32.const 4096) (local.get $argc))
    (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
    (local.set $envc (i32.load (i32.const 8)))
    (drop (call $environ_get (i32.const 4096) (i32.const 8192)))
    (call $print_list (i32.const 40) (i32.const 4096) (local.get $envc))))
