package main

import "github.com/twmb/franz-go/pkg/kmsg"

func metadataRequest(topic string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	return req
}

func partitionCount(resp kmsg.Response, topic string) int32 {
	md, ok := resp.(*kmsg.MetadataResponse)
	if !ok {
		return 0
	}
	for _, t := range md.Topics {
		if t.Topic != nil && *t.Topic == topic && t.ErrorCode == 0 {
			return int32(len(t.Partitions))
		}
	}
	return 0
}
