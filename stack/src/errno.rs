//! Errors as the kernel reports them: the ring crate's positive [`Errno`]
//! (a CQE carries [`Errno::as_res`], `-errno`), and the values the engine
//! uses, by name.

pub(crate) use ringline_ring::app::Errno;

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "`")]
            pub(crate) const $name: Errno = Errno(libc::$name);
        )*
    };
}

errnos!(
    E2BIG,
    EADDRINUSE,
    EADDRNOTAVAIL,
    EAFNOSUPPORT,
    EAGAIN,
    EALREADY,
    EBADF,
    EBADFD,
    EBUSY,
    ECANCELED,
    ECONNREFUSED,
    ECONNRESET,
    EEXIST,
    EFAULT,
    EHOSTUNREACH,
    EINVAL,
    EISCONN,
    EMFILE,
    EMSGSIZE,
    ENETUNREACH,
    ENFILE,
    ENOBUFS,
    ENOENT,
    ENOPROTOOPT,
    ENOTCONN,
    ENXIO,
    EOVERFLOW,
    EOPNOTSUPP,
    EPIPE,
    EPROTONOSUPPORT,
    ESOCKTNOSUPPORT,
    ESPIPE,
    ETIME,
    ETIMEDOUT,
);
