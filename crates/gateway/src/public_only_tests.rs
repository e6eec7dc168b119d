use super::*;
use crate::client::{get_small, FetchError};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn only_global_unicast_addresses_are_public() {
    for public in [
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
    ] {
        assert!(is_public(ip(public)), "{public}");
    }
    for private in [
        "0.0.0.0",
        "10.1.2.3",
        "100.64.0.1",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.168.1.1",
        "198.18.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "2002:a00:1::",
        "2001:0:4136:e378::1",
    ] {
        assert!(!is_public(ip(private)), "{private}");
    }
}

#[test]
fn every_range_parses() {
    assert_eq!(not_public().len(), NOT_PUBLIC.len());
    assert!(
        !is_public(ip("168.63.129.16")),
        "a cloud host's own service"
    );
}

/// A resolver answering a fixed list, as DNS might for a name with public and private
/// addresses.
#[derive(Clone)]
struct Fixed(Vec<SocketAddr>);

impl Service<Name> for Fixed {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _name: Name) -> Self::Future {
        std::future::ready(Ok(self.0.clone().into_iter()))
    }
}

#[tokio::test]
async fn the_resolver_keeps_only_addresses_in_reach() {
    let name: Name = "docs.example".parse().unwrap();
    let mixed = Fixed(vec![
        "10.0.0.5:443".parse().unwrap(),
        "93.184.216.34:443".parse().unwrap(),
        "[fd00::1]:443".parse().unwrap(),
        "127.0.0.1:443".parse().unwrap(),
    ]);
    let mut public = FilteringResolver::new(mixed.clone(), Reach::Public);
    let kept: Vec<SocketAddr> = public.call(name.clone()).await.unwrap().collect();
    assert_eq!(kept, vec!["93.184.216.34:443".parse().unwrap()]);
    let mut dev = FilteringResolver::new(mixed, Reach::PublicAndLoopback);
    assert_eq!(dev.call(name.clone()).await.unwrap().count(), 2);
    let private = Fixed(vec!["192.168.1.1:443".parse().unwrap()]);
    let error = FilteringResolver::new(private, Reach::Public)
        .call(name)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("has no public address"),
        "{error}"
    );
}

#[test]
fn loopback_is_allowed_only_when_asked() {
    assert!(!Reach::Public.allows(ip("127.0.0.1")));
    assert!(Reach::PublicAndLoopback.allows(ip("127.0.0.1")));
    assert!(Reach::PublicAndLoopback.allows(ip("::1")));
    assert!(Reach::PublicAndLoopback.allows(ip("::ffff:127.0.0.1")));
    assert!(!Reach::PublicAndLoopback.allows(ip("10.0.0.1")));
    assert!(!Reach::PublicAndLoopback.allows(ip("169.254.169.254")));
}

/// A server on loopback answering every request with a small JSON body.
async fn loopback_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                          content-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn connections_to_addresses_out_of_reach_are_refused() {
    let addr = loopback_server().await;
    let timeout = Duration::from_secs(5);
    let public = new_public_client(timeout, Reach::Public).unwrap();
    // https only: a plain http URL is refused before any connection.
    let plain = format!("http://{addr}/doc");
    assert!(matches!(
        get_small(&public, &plain, timeout, 100).await,
        Err(FetchError::Unreachable { .. })
    ));
    // An IP literal (no resolver involved) and a name resolving to loopback are refused
    // by the peer check and the resolver.
    for url in [
        format!("https://{addr}/doc"),
        format!("https://localhost:{}/doc", addr.port()),
    ] {
        let Err(FetchError::Unreachable { detail, .. }) =
            get_small(&public, &url, timeout, 100).await
        else {
            panic!("{url} was reached");
        };
        assert!(
            detail.contains("not a public address") || detail.contains("no public address"),
            "{url}: {detail}"
        );
    }
    // An address written in the URL is refused by the connector before it connects (a
    // connection tried to an address nothing answers would end in a time-out instead).
    let Err(FetchError::Unreachable { detail, .. }) =
        get_small(&public, "https://10.0.0.7/doc", timeout, 100).await
    else {
        panic!("10.0.0.7 was reached");
    };
    assert!(
        detail.contains("10.0.0.7 is not a public address"),
        "{detail}"
    );
    // With loopback allowed, the same server answers.
    let dev = new_public_client(timeout, Reach::PublicAndLoopback).unwrap();
    let (body, _) = get_small(&dev, &plain, timeout, 100).await.unwrap();
    assert_eq!(&body[..], b"{}");
}
