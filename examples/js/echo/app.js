// `echo`: returns its input unchanged. The smallest handler there is.
import * as wasmpod from 'wasmpod-sdk';

wasmpod.serve((input) => input);
