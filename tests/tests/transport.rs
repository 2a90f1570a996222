//! daprd's HTTP/2 connection to the bridge: everything daprd does travels on one connection,
//! so anything that ends it ends every stream at once (and daprd does not reopen streams).
//!
//! h2 ends a connection whose unread small DATA frames exceed a budget of half the connection
//! window. daprd (grpc-go) sends each ack as a DATA frame of its own, about 20 bytes. This
//! drives the bridge with a raw HTTP/2 client that does the same, faster than one runtime
//! thread reads them, and checks that the connection and the stream survive. With hyper's
//! default 1 MiB connection window the bridge ended the connection in 2 runs of 3; with its
//! 16 MiB window the burst below stays under the budget however far the bridge falls behind.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use dapr_kafka_proto::components::{PullMessagesRequest, PullMessagesResponse, Topic};
use prost::Message as _;
use testkit::{BridgeUnderTest, Broker, Daprd, group_init, unique};

/// One gRPC message: the uncompressed flag, the length, the protobuf.
fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + body.len());
    frame.put_u8(0);
    frame.put_u32(body.len() as u32);
    frame.put_slice(&body);
    frame.freeze()
}

fn grpc_request(method: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost/dapr.proto.components.v1.PubSub/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Reads gRPC messages from a response body until `count` arrived.
async fn read_messages(body: &mut h2::RecvStream, count: usize) -> Vec<PullMessagesResponse> {
    let mut buffer = BytesMut::new();
    let mut out = Vec::new();
    while out.len() < count {
        while buffer.len() >= 5 {
            let len = u32::from_be_bytes(buffer[1..5].try_into().unwrap()) as usize;
            if buffer.len() < 5 + len {
                break;
            }
            let frame = buffer.split_to(5 + len);
            out.push(PullMessagesResponse::decode(&frame[5..]).unwrap());
        }
        if out.len() >= count {
            break;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.data())
            .await
            .expect("a message within 30 s")
            .expect("the stream ended")
            .expect("the stream failed");
        let _ = body.flow_control().release_capacity(chunk.len());
        buffer.extend_from_slice(&chunk);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_small_ack_frames_does_not_end_daprds_connection() {
    let broker = Broker::start(testkit::BrokerKind::Mock).await;
    let (topic, group) = (unique("acks"), unique("g"));
    broker.create_topic(&topic, 1).await;
    // The binary, with its default runtime (one thread on this machine).
    let bridge = BridgeUnderTest::child(&[]);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&group_init(&broker, &group, &[])).await.unwrap();
    daprd.publish(&topic, b"first", &[]).await.unwrap();

    // daprd's side of one connection, frame by frame.
    let socket = tokio::net::UnixStream::connect(bridge.socket()).await.unwrap();
    let (client, connection) = h2::client::handshake(socket).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let (response, mut send) = client.send_request(grpc_request("PullMessages"), false).unwrap();
    let subscribe =
        PullMessagesRequest { topic: Some(Topic { name: topic.clone(), ..Default::default() }), ..Default::default() };
    send.send_data(grpc_frame(&subscribe), false).unwrap();
    let mut body = response.await.expect("the stream opens").into_body();
    let first = read_messages(&mut body, 1).await;
    assert_eq!(&first[0].data[..], b"first");

    // 30 000 acks, each a DATA frame of its own (about 20 bytes), written as fast as the socket
    // takes them: ids the bridge never delivered, which it reads and ignores. Under hyper's
    // default 1 MiB window h2 allows about 2 200 of them unread before it ends the connection.
    for i in 0..30_000u32 {
        let ack = PullMessagesRequest { ack_message_id: format!("0-{}-9-1", 1_000_000 + i), ..Default::default() };
        send.send_data(grpc_frame(&ack), false).unwrap();
    }
    // The real ack, last: the stream still works and delivers the next message.
    let ack = PullMessagesRequest { ack_message_id: first[0].id.clone(), ..Default::default() };
    send.send_data(grpc_frame(&ack), false).unwrap();
    daprd.publish(&topic, b"second", &[]).await.unwrap();
    let second = read_messages(&mut body, 1).await;
    assert_eq!(&second[0].data[..], b"second", "the stream survived the burst");

    // And the connection itself takes new calls.
    let mut client = client.ready().await.expect("the connection is still open");
    let (response, mut send) = client.send_request(grpc_request("Ping"), false).unwrap();
    send.send_data(grpc_frame(&dapr_kafka_proto::components::PingRequest {}), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response).await.unwrap().expect("Ping answered");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert!(!connection.is_finished(), "the connection was not ended");
    drop(send);
    assert!(bridge.stop().await);
}
