;; `files`: reads a file through WASI 0.2 filesystem from the first directory
;; the host granted. The request payload is the path, relative to that
;; directory; the response payload is the file's first 64 KiB.
;;
;; Its own errors (plugin-error codes):
;;   1        no directory was granted
;;   100 + e  open-at failed with wasi:filesystem error-code e (an escape
;;            such as "../x" or "/etc/passwd" is refused here, typically
;;            with 31 = not-permitted; 20 = no-entry)
;;   200 + e  read failed with error-code e
;;
;; Memory: 0..1024 constant strings; 1024..1044 the result area; 1100..1152
;; return areas of the WASI calls; 4096.. the bump heap (the host writes the
;; directory list and file contents there), reset after every call.
(module
  (import "wasi:filesystem/preopens@0.2.12" "get-directories"
    (func $get_directories (param i32)))
  (import "wasi:filesystem/types@0.2.12" "[method]descriptor.open-at"
    (func $open_at (param i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:filesystem/types@0.2.12" "[method]descriptor.read"
    (func $read (param i32 i64 i64 i32)))
  (import "wasi:filesystem/types@0.2.12" "[resource-drop]descriptor"
    (func $drop (param i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  (data (i32.const 0) "no directory was granted")   ;; 0, 24
  (data (i32.const 32) "open-at failed")            ;; 32, 14
  (data (i32.const 48) "read failed")               ;; 48, 11
  (data (i32.const 64) "application/octet-stream")  ;; 64, 24

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


  ;; Drops every directory handle of the list at `list` (`n` entries of 12 bytes).
  (func $drop_dirs (param $list i32) (param $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (call $drop (i32.load (local.get $list)))
        (local.set $list (i32.add (local.get $list) (i32.const 12)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next))))

  ;; err(plugin-error { code, message }) in the result area.
  (func $fail (param $code i32) (param $msg i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 1024) (i32.const 1))
    (i32.store (i32.const 1028) (local.get $code))
    (i32.store (i32.const 1032) (local.get $msg))
    (i32.store (i32.const 1036) (local.get $len))
    (i32.const 1024))

  (func (export "wrun:plugin/handler@0.1.0#call")
    (param $name i32) (param $name_len i32) (param $path i32) (param $path_len i32)
    (result i32)
    (local $dirs i32) (local $ndirs i32) (local $file i32) (local $err i32)

    ;; get-directories() -> list<tuple<descriptor, string>>
    (call $get_directories (i32.const 1100))
    (local.set $dirs (i32.load (i32.const 1100)))
    (local.set $ndirs (i32.load (i32.const 1104)))
    (if (i32.eqz (local.get $ndirs))
      (then (return (call $fail (i32.const 1) (i32.const 0) (i32.const 24)))))

    ;; first-directory.open-at({}, path, {}, {read}) -> result<descriptor, error-code>
    (call $open_at (i32.load (local.get $dirs)) (i32.const 0)
      (local.get $path) (local.get $path_len) (i32.const 0) (i32.const 1) (i32.const 1120))
    (if (i32.load8_u (i32.const 1120))
      (then
        (local.set $err (i32.load8_u (i32.const 1124)))
        (call $drop_dirs (local.get $dirs) (local.get $ndirs))
        (return (call $fail (i32.add (i32.const 100) (local.get $err))
                            (i32.const 32) (i32.const 14)))))
    (local.set $file (i32.load (i32.const 1124)))

    ;; file.read(65536, 0) -> result<tuple<list<u8>, bool>, error-code>
    (call $read (local.get $file) (i64.const 65536) (i64.const 0) (i32.const 1140))
    (call $drop (local.get $file))
    (call $drop_dirs (local.get $dirs) (local.get $ndirs))
    (if (i32.load8_u (i32.const 1140))
      (then
        (return (call $fail (i32.add (i32.const 200) (i32.load8_u (i32.const 1144)))
                            (i32.const 48) (i32.const 11)))))

    ;; ok(response { content-type: "application/octet-stream", contents })
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 64))
    (i32.store (i32.const 1032) (i32.const 24))
    (i32.store (i32.const 1036) (i32.load (i32.const 1144)))
    (i32.store (i32.const 1040) (i32.load (i32.const 1148)))
    (i32.const 1024))
)
