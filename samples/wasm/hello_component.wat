;; hello_component: a WASI 0.2 `wasi:cli/command` written by hand.
;;
;; Prints "hello from component" through wasi:cli/stdout, then reads its
;; arguments through wasi:cli/environment: `run` returns `ok` when there is
;; only argv[0] and `err` when there are more (so a host maps it to exit 1).
(component
  (import "wasi:io/error@0.2.0" (instance $io-error
    (export "error" (type (sub resource)))))
  (alias export $io-error "error" (type $error))

  (import "wasi:io/streams@0.2.0" (instance $io-streams
    (alias outer 1 $error (type $error-in))
    (export "error" (type $error-ex (eq $error-in)))
    (export "output-stream" (type $output-stream (sub resource)))
    (type $stream-error-def
      (variant (case "last-operation-failed" (own $error-ex)) (case "closed")))
    (export "stream-error" (type $stream-error (eq $stream-error-def)))
    (type $borrow-os (borrow $output-stream))
    (type $bytes (list u8))
    (export "[method]output-stream.blocking-write-and-flush"
      (func (param "self" $borrow-os) (param "contents" $bytes)
            (result (result (error $stream-error)))))))
  (alias export $io-streams "output-stream" (type $output-stream))

  (import "wasi:cli/stdout@0.2.0" (instance $cli-stdout
    (alias outer 1 $output-stream (type $os-out))
    (export "output-stream" (type (eq $os-out)))
    (type $own-os (own $os-out))
    (export "get-stdout" (func (result $own-os)))))

  (import "wasi:cli/environment@0.2.0" (instance $cli-env
    (type $strings (list string))
    (export "get-arguments" (func (result $strings)))))

  ;; Memory and a bump allocator for the canonical ABI.
  (core module $Libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      ;; align up to 8
      (local.set $p (i32.and (i32.add (global.get $next) (i32.const 7)) (i32.const -8)))
      (global.set $next (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    (data (i32.const 512) "hello from component\n"))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "cabi_realloc" (core func $cabi_realloc))

  (core func $get-stdout (canon lower (func $cli-stdout "get-stdout")))
  (core func $write
    (canon lower (func $io-streams "[method]output-stream.blocking-write-and-flush")
      (memory (core memory $libc "memory"))))
  (core func $get-arguments
    (canon lower (func $cli-env "get-arguments")
      (memory (core memory $libc "memory")) (realloc $cabi_realloc)))

  (core module $Main
    (import "host" "get-stdout" (func $get-stdout (result i32)))
    (import "host" "write" (func $write (param i32 i32 i32 i32)))
    (import "host" "get-arguments" (func $get-arguments (param i32)))
    (import "libc" "memory" (memory 1))
    (func (export "run") (result i32)
      ;; write(stdout, "hello from component\n"), result at 16
      (call $write (call $get-stdout) (i32.const 512) (i32.const 21) (i32.const 16))
      ;; arguments: list pointer at 32, length at 36
      (call $get-arguments (i32.const 32))
      ;; result discriminant: 0 = ok, 1 = err
      (i32.gt_u (i32.load (i32.const 36)) (i32.const 1))))
  (core instance $main (instantiate $Main
    (with "host" (instance
      (export "get-stdout" (func $get-stdout))
      (export "write" (func $write))
      (export "get-arguments" (func $get-arguments))))
    (with "libc" (instance $libc))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (component $Run
    (import "run" (func $run (result (result))))
    (export "run" (func $run)))
  (instance $run (instantiate $Run (with "run" (func $run))))
  (export "wasi:cli/run@0.2.0" (instance $run)))
