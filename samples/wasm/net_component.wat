;; net_component: a WASI 0.2 command that tries one network operation and
;; returns `ok` from `run` (exit 0) when it was allowed, `err` (exit 1) when
;; it was refused:
;;
;;   net_component tcp    create a TCP socket (wasi:sockets/tcp-create-socket)
;;   net_component dns    resolve "127.0.0.1" (wasi:sockets/ip-name-lookup;
;;                        an address literal, so no resolver is needed)
(component
  (import "wasi:sockets/network@0.2.0" (instance $network
    (export "network" (type (sub resource)))
    (type $ec (enum
      "unknown" "access-denied" "not-supported" "invalid-argument"
      "out-of-memory" "timeout" "concurrency-conflict" "not-in-progress"
      "would-block" "invalid-state" "new-socket-limit" "address-not-bindable"
      "address-in-use" "remote-unreachable" "connection-refused"
      "connection-reset" "connection-aborted" "datagram-too-large"
      "name-unresolvable" "temporary-resolver-failure"
      "permanent-resolver-failure"))
    (export "error-code" (type (eq $ec)))
    (type $af (enum "ipv4" "ipv6"))
    (export "ip-address-family" (type (eq $af)))))
  (alias export $network "network" (type $net))
  (alias export $network "error-code" (type $error-code))
  (alias export $network "ip-address-family" (type $family))

  (import "wasi:sockets/instance-network@0.2.0" (instance $instance-network
    (alias outer 1 $net (type $n))
    (export "network" (type (eq $n)))
    (type $own-n (own $n))
    (export "instance-network" (func (result $own-n)))))

  (import "wasi:sockets/ip-name-lookup@0.2.0" (instance $lookup
    (alias outer 1 $net (type $n))
    (export "network" (type (eq $n)))
    (alias outer 1 $error-code (type $ec))
    (export "error-code" (type $ec-ex (eq $ec)))
    (export "resolve-address-stream" (type $stream (sub resource)))
    (type $borrow-n (borrow $n))
    (type $own-stream (own $stream))
    (export "resolve-addresses"
      (func (param "network" $borrow-n) (param "name" string)
            (result (result $own-stream (error $ec-ex)))))))

  (import "wasi:sockets/tcp@0.2.0" (instance $tcp
    (export "tcp-socket" (type (sub resource)))))
  (alias export $tcp "tcp-socket" (type $tcp-socket))

  (import "wasi:sockets/tcp-create-socket@0.2.0" (instance $tcp-create
    (alias outer 1 $error-code (type $ec))
    (export "error-code" (type $ec-ex (eq $ec)))
    (alias outer 1 $family (type $f))
    (export "ip-address-family" (type $f-ex (eq $f)))
    (alias outer 1 $tcp-socket (type $s))
    (export "tcp-socket" (type $socket (eq $s)))
    (type $own-socket (own $socket))
    (export "create-tcp-socket"
      (func (param "address-family" $f-ex)
            (result (result $own-socket (error $ec-ex)))))))

  (import "wasi:cli/environment@0.2.0" (instance $cli-env
    (type $strings (list string))
    (export "get-arguments" (func (result $strings)))))

  (core module $Libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $next) (i32.const 7)) (i32.const -8)))
      (global.set $next (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    (data (i32.const 512) "127.0.0.1"))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "cabi_realloc" (core func $cabi_realloc))

  (core func $instance-network (canon lower (func $instance-network "instance-network")))
  (core func $resolve
    (canon lower (func $lookup "resolve-addresses") (memory (core memory $libc "memory"))))
  (core func $create-tcp
    (canon lower (func $tcp-create "create-tcp-socket") (memory (core memory $libc "memory"))))
  (core func $get-arguments
    (canon lower (func $cli-env "get-arguments")
      (memory (core memory $libc "memory")) (realloc $cabi_realloc)))

  (core module $Main
    (import "host" "instance-network" (func $instance-network (result i32)))
    (import "host" "resolve" (func $resolve (param i32 i32 i32 i32)))
    (import "host" "create-tcp" (func $create-tcp (param i32 i32)))
    (import "host" "get-arguments" (func $get-arguments (param i32)))
    (import "libc" "memory" (memory 1))
    (func (export "run") (result i32)
      ;; arguments: list pointer at 32, length at 36; usage error without one
      (call $get-arguments (i32.const 32))
      (if (i32.lt_u (i32.load (i32.const 36)) (i32.const 2))
        (then (return (i32.const 1))))
      ;; first byte of argv[1] (element 1: string pointer at list + 8)
      (if (i32.eq (i32.load8_u (i32.load (i32.add (i32.load (i32.const 32)) (i32.const 8))))
                  (i32.const 116)) ;; 't'
        (then (call $create-tcp (i32.const 0) (i32.const 64)))
        (else (call $resolve (call $instance-network) (i32.const 512) (i32.const 9) (i32.const 64))))
      ;; the result's discriminant is run's: 0 = ok, 1 = err
      (i32.load8_u (i32.const 64))))
  (core instance $main (instantiate $Main
    (with "host" (instance
      (export "instance-network" (func $instance-network))
      (export "resolve" (func $resolve))
      (export "create-tcp" (func $create-tcp))
      (export "get-arguments" (func $get-arguments))))
    (with "libc" (instance $libc))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (component $Run
    (import "run" (func $run (result (result))))
    (export "run" (func $run)))
  (instance $run (instantiate $Run (with "run" (func $run))))
  (export "wasi:cli/run@0.2.0" (instance $run)))
