;; memhog: grows linear memory one page (64 KiB) at a time until
;; `memory.grow` fails, then prints "grew N pages" and exits normally.
;; Under a memory limit the growth must fail inside the guest (-1), not trap.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "grew ")
  (data (i32.const 24) " pages\n")
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; Writes `n` in decimal backwards from offset 64 and prints it.
  (func $print_u32 (param $n i32)
    (local $p i32)
    (local.set $p (i32.const 64))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (i32.ne (local.get $n) (i32.const 0))))
    (call $write (local.get $p) (i32.sub (i32.const 64) (local.get $p))))
  (func (export "_start")
    (local $pages i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
        ;; Stop at 4 GiB of address space (65536 pages) whatever happens.
        (br_if $more (i32.lt_u (local.get $pages) (i32.const 65535)))))
    (call $write (i32.const 16) (i32.const 5))
    (call $print_u32 (local.get $pages))
    (call $write (i32.const 24) (i32.const 7))))
