-- Level 4's cascades: each rated answer of a request, as x-switchyard-cascade
-- (`model;score=0.42;verdict=rejected;cost_usd=…, …`); null for routes without a cascade.
ALTER TABLE decisions ADD COLUMN cascade TEXT;
