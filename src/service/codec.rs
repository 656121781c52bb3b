//! The protobuf codec the generated `byline.v1` code uses: prost's, except that bytes that do
//! not decode as the expected message are the sender's error. prost's own codec answers them
//! with `INTERNAL`, which tells a caller that sent a malformed or too deeply nested message
//! (prost stops at 100 levels) that the server is broken; this one says `INVALID_ARGUMENT` and
//! names the problem. The generated client shares the codec, so a malformed *answer* is also
//! reported as `INVALID_ARGUMENT`, with the same "malformed protobuf" message.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// prost encoding and decoding, with decode failures mapped to `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        StrictProstCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = InvalidArgumentDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        InvalidArgumentDecoder {
            inner: ProstDecoder::default(),
        }
    }
}

/// prost's decoder with its `INTERNAL` decode errors turned into `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct InvalidArgumentDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: Message + Default> Decoder for InvalidArgumentDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            if status.code() == Code::Internal {
                Status::invalid_argument(format!(
                    "malformed protobuf message: {}",
                    status.message()
                ))
            } else {
                status
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
