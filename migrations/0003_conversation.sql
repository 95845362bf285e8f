-- Level 4's conversations: the id a chat turn was counted under, as x-switchyard-conversation
-- (`client:KEYTAG:NAME` or `derived:HEX`); null without a [conversation] section. A bad rating
-- through POST /v1/feedback reaches the conversation through it.
ALTER TABLE decisions ADD COLUMN conversation TEXT;
